package driver

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Config is what the engine hands a driver to build its Connector from: the driver's own
// connection string (the engine's keys taken out, every other byte as the user wrote it) and the
// engine settings that a driver applies to its connections.
type Config struct {
	// DSN is the driver's connection string.
	DSN string
	// StatementCache is the statement preparation policy: "prepare", "describe", "none",
	// "describe_exec" or "simple". Drivers without such a choice ignore it.
	StatementCache string
	// CancelGrace, when positive, asks a driver that can cancel a running statement on the server
	// to do so when the context ends, and to close the connection only after this grace period.
	CancelGrace time.Duration
}

// OpenFunc builds a Connector from a Config. It parses the connection string once, and reports
// a bad one as an error; it opens no connection.
type OpenFunc func(cfg Config) (Connector, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]OpenFunc{}
)

// Register makes a driver available under name, as database/sql's Register does: an engine whose
// configuration names the driver builds its Connector with open. Register panics when name is
// registered twice or open is nil.
func Register(name string, open OpenFunc) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if open == nil {
		panic("driver: Register of a nil OpenFunc")
	}
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("driver: Register called twice for %q", name))
	}
	registry[name] = open
}

// Lookup returns the OpenFunc registered under name.
func Lookup(name string) (OpenFunc, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	open, ok := registry[name]
	return open, ok
}

// Drivers returns the registered driver names, sorted.
func Drivers() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for name := range registry {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ConnectTimeouter is implemented by connectors that bound a connection attempt themselves (a
// connect_timeout setting). The engine bounds attempts of other connectors by its pool timeout.
type ConnectTimeouter interface {
	// ConnectTimeout returns the connector's own bound of one attempt; 0 means none.
	ConnectTimeout() time.Duration
}
