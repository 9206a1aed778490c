package gosqlaotel

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

type metricProvider = metric.MeterProvider

// WithMeterProvider sets the provider of RegisterMetrics' meter (default:
// otel.GetMeterProvider()).
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.mp = mp } }

// stats is one collection's snapshot, read once for every instrument.
type stats struct {
	pool    asyncengine.PoolStats
	workers asyncengine.WorkerStats
}

type instrumentKind int

const (
	gauge instrumentKind = iota
	upDown
	counter
)

// intInstrument is one integer instrument and the statistic it reports.
type intInstrument struct {
	kind              instrumentKind
	name, unit, descr string
	value             func(*stats) int64
}

// intInstruments are the integer instruments observed with the pool's attributes alone;
// db.client.connection.count (by state) and gosqla.pool.wait_time (seconds) are registered apart.
var intInstruments = []intInstrument{
	{upDown, "db.client.connection.max", "{connection}", "Most connections open at once; 0 means no limit", func(s *stats) int64 { return int64(s.pool.MaxOpen) }},
	{upDown, "db.client.connection.idle.max", "{connection}", "Idle connections kept (pool_size)", func(s *stats) int64 { return int64(s.pool.Size) }},
	{upDown, "db.client.connection.pending_requests", "{request}", "Checkouts waiting for a connection", func(s *stats) int64 { return int64(s.pool.Waiting) }},
	{counter, "db.client.connection.timeouts", "{timeout}", "Checkouts that gave up after pool_timeout", func(s *stats) int64 { return s.pool.Timeouts }},
	{gauge, "gosqla.pool.overflow", "{connection}", "Connections open beyond pool_size (negative while fewer are open)", func(s *stats) int64 { return int64(s.pool.Overflow) }},
	{counter, "gosqla.pool.waits", "{checkout}", "Checkouts that had to wait", func(s *stats) int64 { return s.pool.Waits }},
	{counter, "gosqla.pool.connects", "{connection}", "Physical connections opened", func(s *stats) int64 { return s.pool.Connects }},
	{counter, "gosqla.pool.connect_errors", "{error}", "Failed connection attempts", func(s *stats) int64 { return s.pool.ConnectErrors }},
	{counter, "gosqla.pool.closes", "{connection}", "Physical connections closed", func(s *stats) int64 { return s.pool.Closes }},
	{counter, "gosqla.pool.invalidations", "{connection}", "Connections invalidated", func(s *stats) int64 { return s.pool.Invalidations }},
	{counter, "gosqla.pool.leaks", "{connection}", "Connections garbage-collected while checked out", func(s *stats) int64 { return s.pool.Leaks }},
	{counter, "gosqla.pool.round_trips", "{round_trip}", "Round trips to the server on checked-out connections", func(s *stats) int64 { return s.pool.RoundTrips }},
	{upDown, "gosqla.workers.size", "{goroutine}", "Worker goroutines at most", func(s *stats) int64 { return int64(s.workers.Size) }},
	{upDown, "gosqla.workers.started", "{goroutine}", "Worker goroutines started", func(s *stats) int64 { return int64(s.workers.Started) }},
	{upDown, "gosqla.workers.running", "{task}", "Tasks running on the workers", func(s *stats) int64 { return s.workers.Running }},
	{upDown, "gosqla.workers.queued", "{task}", "Tasks waiting for a worker", func(s *stats) int64 { return int64(s.workers.Queued) }},
	{counter, "gosqla.workers.submitted", "{task}", "Tasks submitted", func(s *stats) int64 { return s.workers.Submitted }},
	{counter, "gosqla.workers.completed", "{task}", "Tasks completed", func(s *stats) int64 { return s.workers.Completed }},
	{counter, "gosqla.workers.panics", "{task}", "Tasks that panicked", func(s *stats) int64 { return s.workers.Panics }},
	{counter, "gosqla.workers.direct", "{call}", "Blocking driver calls run beside busy workers", func(s *stats) int64 { return s.workers.Direct }},
}

func (in intInstrument) register(m metric.Meter) (metric.Int64Observable, error) {
	unit, descr := metric.WithUnit(in.unit), metric.WithDescription(in.descr)
	switch in.kind {
	case gauge:
		return m.Int64ObservableGauge(in.name, unit, descr)
	case upDown:
		return m.Int64ObservableUpDownCounter(in.name, unit, descr)
	default:
		return m.Int64ObservableCounter(in.name, unit, descr)
	}
}

// RegisterMetrics exposes e's pool and worker statistics (Engine.Stats, Workers().Stats) as
// asynchronous instruments, read when the meter's reader collects; poolName tells engines apart
// (attribute db.client.connection.pool.name). Call the returned function to stop.
//
// Give each engine its own poolName: a second registration under a pool name that is registered
// with the same meter provider, and not yet stopped, is an error — its series would be the first
// one's, and a reader would add their values up (a pool counted twice).
//
// Instruments (OpenTelemetry's database client names where they exist):
//
//	db.client.connection.count            connections open, by db.client.connection.state (idle, used)
//	db.client.connection.max              most connections open at once (0: no limit)
//	db.client.connection.idle.max         pool_size
//	db.client.connection.pending_requests checkouts waiting
//	db.client.connection.timeouts         checkouts that gave up after pool_timeout
//	gosqla.pool.overflow                  connections beyond pool_size (negative while fewer are open)
//	gosqla.pool.waits                     checkouts that had to wait
//	gosqla.pool.wait_time                 seconds checkouts spent waiting, in total
//	gosqla.pool.connects, .connect_errors, .closes, .invalidations, .leaks
//	gosqla.pool.round_trips               round trips to the server (native PostgreSQL driver)
//	gosqla.workers.size, .started, .running, .queued
//	gosqla.workers.submitted, .completed, .panics, .direct
func RegisterMetrics(e *asyncengine.Engine, poolName string, opts ...Option) (stop func() error, err error) {
	o := build(opts)
	mp := o.mp
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	release, err := claimPoolName(mp, poolName)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	m := mp.Meter(ScopeName)
	pool := attribute.String("db.client.connection.pool.name", poolName)
	system := attribute.String("db.system.name", string(e.Config().Dialect))
	common := metric.WithAttributes(pool, system)
	idle := metric.WithAttributes(pool, system, attribute.String("db.client.connection.state", "idle"))
	used := metric.WithAttributes(pool, system, attribute.String("db.client.connection.state", "used"))

	count, err := m.Int64ObservableUpDownCounter("db.client.connection.count", metric.WithUnit("{connection}"), metric.WithDescription("Connections open, by state"))
	if err != nil {
		return nil, err
	}
	waitTime, err := m.Float64ObservableCounter("gosqla.pool.wait_time", metric.WithUnit("s"), metric.WithDescription("Time checkouts spent waiting, in total"))
	if err != nil {
		return nil, err
	}
	observed := []metric.Observable{count, waitTime}
	ints := make([]metric.Int64Observable, len(intInstruments))
	for i, in := range intInstruments {
		if ints[i], err = in.register(m); err != nil {
			return nil, err
		}
		observed = append(observed, ints[i])
	}
	reg, err := m.RegisterCallback(func(_ context.Context, ob metric.Observer) error {
		s := stats{pool: e.Stats(), workers: e.Workers().Stats()}
		ob.ObserveInt64(count, int64(s.pool.CheckedIn), idle)
		ob.ObserveInt64(count, int64(s.pool.CheckedOut), used)
		ob.ObserveFloat64(waitTime, s.pool.WaitTime.Seconds(), common)
		for i, in := range intInstruments {
			ob.ObserveInt64(ints[i], in.value(&s), common)
		}
		return nil
	}, observed...)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	return func() error {
		err := reg.Unregister()
		once.Do(release)
		return err
	}, nil
}

// registered holds the pool names registered with each meter provider.
var registered = struct {
	sync.Mutex
	names map[poolKey]bool
}{names: map[poolKey]bool{}}

type poolKey struct {
	mp   any
	name string
}

// claimPoolName reserves poolName on mp until release. A provider whose type cannot be a map key
// is not checked.
func claimPoolName(mp metric.MeterProvider, poolName string) (release func(), err error) {
	if !reflect.TypeOf(mp).Comparable() {
		return func() {}, nil
	}
	k := poolKey{mp: mp, name: poolName}
	registered.Lock()
	defer registered.Unlock()
	if registered.names[k] {
		return nil, fmt.Errorf("gosqlaotel: pool name %q is already registered with this meter provider; give each engine its own name, or stop the first registration", poolName)
	}
	registered.names[k] = true
	return func() {
		registered.Lock()
		delete(registered.names, k)
		registered.Unlock()
	}, nil
}
