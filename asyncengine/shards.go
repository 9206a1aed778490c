package asyncengine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
)

// ErrUnknownShard is matched by every *UnknownShardError.
var ErrUnknownShard = errors.New("gosqla: unknown shard")

// UnknownShardError reports a shard name (from a chooser, typically) that the ShardSet does not
// hold: nothing is read from or written to a wrong shard.
type UnknownShardError struct {
	Shard string
	Known []string
}

func (e *UnknownShardError) Error() string {
	return fmt.Sprintf("gosqla: unknown shard %q (the set holds: %s)", e.Shard, strings.Join(e.Known, ", "))
}
func (e *UnknownShardError) Is(target error) bool { return target == ErrUnknownShard }

// ShardSet holds engines that each store part of the data (horizontal sharding), by name. Your
// code chooses the shard of each row; the set finds its engine and runs a query on several
// shards at once. A transaction is local to one shard: there is no atomicity across shards.
type ShardSet struct {
	names   []string
	engines map[string]*Engine
}

// NewShardSet makes a set of the named engines; it owns them from then on (Close closes them).
func NewShardSet(shards map[string]*Engine) (*ShardSet, error) {
	if len(shards) == 0 {
		return nil, &ConfigError{Key: "shards", Err: fmt.Errorf("no shards")}
	}
	s := &ShardSet{engines: make(map[string]*Engine, len(shards))}
	for name, e := range shards {
		if e == nil {
			return nil, &ConfigError{Key: "shards", Value: name, Err: fmt.Errorf("a nil engine")}
		}
		if name == "" {
			return nil, &ConfigError{Key: "shards", Err: fmt.Errorf("a shard without a name")}
		}
		s.names = append(s.names, name)
		s.engines[name] = e
	}
	sort.Strings(s.names)
	return s, nil
}

// Names are the shards' names, sorted.
func (s *ShardSet) Names() []string { return append([]string(nil), s.names...) }

// Shard is the engine of the named shard.
func (s *ShardSet) Shard(name string) (*Engine, error) {
	if e, ok := s.engines[name]; ok {
		return e, nil
	}
	return nil, &UnknownShardError{Shard: name, Known: s.Names()}
}

// Close closes every shard's engine.
func (s *ShardSet) Close() error {
	var errs []error
	for _, name := range s.names {
		errs = append(errs, s.engines[name].Close())
	}
	return errors.Join(errs...)
}

// OnShards runs fn on each named shard (every shard when names is empty) at once, each on its own
// goroutine, and returns the results by shard name. The first error cancels the others' context
// and is returned, naming its shard.
func OnShards[T any](ctx context.Context, s *ShardSet, names []string, fn func(ctx context.Context, shard string, e *Engine) (T, error)) (map[string]T, error) {
	if len(names) == 0 {
		names = s.names
	}
	engines := make([]*Engine, len(names))
	for i, name := range names {
		e, err := s.Shard(name)
		if err != nil {
			return nil, err
		}
		engines[i] = e
	}
	results := make([]T, len(names))
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range names {
		g.Go(func() error {
			return CatchPanic(func() error {
				v, err := fn(gctx, name, engines[i])
				if err != nil {
					return fmt.Errorf("shard %q: %w", name, err)
				}
				results[i] = v
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]T, len(names))
	for i, name := range names {
		out[name] = results[i]
	}
	return out, nil
}

// QueryAll runs a query on every shard at once and returns each shard's result by name.
func (s *ShardSet) QueryAll(ctx context.Context, sql string, args ...any) (map[string]*Result, error) {
	return OnShards(ctx, s, nil, func(ctx context.Context, _ string, e *Engine) (*Result, error) {
		return e.Query(ctx, sql, args...)
	})
}
