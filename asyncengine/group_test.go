package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Wait returns only when every started task has finished; tasks not started when the first
// error cancelled the group never run.
func TestGroupWaitsForEveryStartedTask(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "pool_size=4&max_overflow=0&workers=4")
	ctx := enginetest.Context(t)
	g, gctx := asyncengine.NewGroup(ctx, e.Workers())
	var running, ran atomic.Int64
	boom := errors.New("boom")
	for i := range 40 {
		g.Go(func(ctx context.Context) error {
			ran.Add(1)
			running.Add(1)
			defer running.Add(-1)
			if i == 0 {
				return boom
			}
			_, err := asyncengine.RunSync(ctx, e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
				_, err := c.Exec(context.WithoutCancel(ctx), "SELECT pg_sleep(0.05)")
				return 0, err
			}).Await(ctx)
			return err
		})
	}
	require.ErrorIs(t, g.Wait(), boom)
	assert.Zero(t, running.Load(), "no task still runs after Wait")
	assert.Zero(t, e.Stats().CheckedOut, "no task still holds a connection after Wait")
	assert.Less(t, ran.Load(), int64(40), "tasks not started when the group failed never ran")
	assert.Error(t, gctx.Err())
}

// A RunSync inside a RunSync, with every worker and connection taken by outer calls and no
// deadline, runs inline on the caller's worker instead of waiting forever.
func TestNestedRunSyncDoesNotWaitForItsCaller(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "pool_size=2&max_overflow=0&workers=2")
	outer := func() *asyncengine.Future[int] {
		return asyncengine.RunSync(context.Background(), e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
			return asyncengine.RunSync(ctx, e, func(ctx context.Context, inner *asyncengine.Conn) (int, error) {
				r, err := inner.Query(ctx, "SELECT 1")
				if err != nil {
					return 0, err
				}
				var n int
				return n, r.One(&n)
			}).Await(ctx)
		})
	}
	fs := []*asyncengine.Future[int]{outer(), outer(), outer()}
	wait, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got, err := asyncengine.All(wait, fs...)
	require.NoError(t, err, "nested RunSync finished within a second")
	assert.Equal(t, []int{1, 1, 1}, got)

	// a second checkout inside RunSync while its caller holds the last connection fails at once
	start := time.Now()
	_, err = asyncengine.RunSync(context.Background(), e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
		other, err := e.Connect(context.Background())
		if err == nil {
			other.Close()
		}
		held, err := e.Connect(ctx) // one connection is left: this takes it
		if err != nil {
			return 0, err
		}
		defer held.Close()
		_, err = e.Connect(ctx)
		return 0, err
	}).Await(context.Background())
	require.ErrorIs(t, err, asyncengine.ErrNestedCheckout)
	assert.Less(t, time.Since(start), time.Second)
}

// A stage under a Group limit leaves the rest of the workers to other stages: a RunSync writer
// finishes while a long CPU-only stage holds every worker it is allowed.
func TestGroupLimitReservesWorkersForOtherStages(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t), "pool_size=3&max_overflow=0&workers=3")
	ctx := enginetest.Context(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the engine's Close, which waits for the tasks
	cpu, _ := asyncengine.NewGroup(ctx, e.Workers())
	cpu.SetLimit(2)
	var started atomic.Int64
	stageDone := make(chan error, 1)
	go func() {
		for range 50 {
			cpu.Go(func(context.Context) error {
				started.Add(1)
				<-release
				return nil
			})
		}
		stageDone <- cpu.Wait()
	}()
	for started.Load() < 2 {
		require.NoError(t, ctx.Err())
		time.Sleep(time.Millisecond)
	}
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := asyncengine.RunSync(wait, e, func(ctx context.Context, c *asyncengine.Conn) (int, error) {
		_, err := c.Exec(ctx, "SELECT 1")
		return 0, err
	}).Await(wait)
	require.NoError(t, err, "the writer got a worker while the CPU stage was at its limit")
	assert.EqualValues(t, 2, started.Load(), "the stage never ran more than its limit")
	unblock()
	require.NoError(t, <-stageDone)
	assert.EqualValues(t, 50, started.Load())
}

func ExampleGroup() {
	ctx := context.Background()
	w := asyncengine.NewWorkers(4, 16)
	defer w.Close()
	g, gctx := asyncengine.NewGroup(ctx, w)
	g.SetLimit(2) // this stage keeps at most two tasks queued or running
	var sum atomic.Int64
	for i := 1; i <= 10; i++ {
		g.Go(func(ctx context.Context) error {
			sum.Add(int64(i))
			return nil
		})
	}
	err := g.Wait()
	fmt.Println(sum.Load(), err, gctx.Err() != nil)
	// Output: 55 <nil> true
}
