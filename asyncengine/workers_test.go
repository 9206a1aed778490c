package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkersBackpressureAndClose(t *testing.T) {
	verifyNoLeaks(t)
	w := asyncengine.NewWorkers(1, 1)
	release := make(chan struct{})
	ctx := enginetest.Context(t)
	running := asyncengine.Go(ctx, w, func(context.Context) (int, error) { <-release; return 1, nil })
	waitUntil(t, 10*time.Second, "the first task to run", func() bool { return w.Stats().Running == 1 })
	queued := asyncengine.Go(ctx, w, func(context.Context) (int, error) { return 2, nil })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	full := asyncengine.Go(short, w, func(context.Context) (int, error) { return 3, nil })
	_, err := full.Await(ctx)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "a full queue pushes back through ctx")
	close(release)
	v, err := asyncengine.All(ctx, running, queued)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, v)
	require.NoError(t, w.Close())
	_, err = asyncengine.Go(ctx, w, func(context.Context) (int, error) { return 0, nil }).Await(ctx)
	assert.ErrorIs(t, err, asyncengine.ErrWorkersClosed)
	assert.EqualValues(t, 2, w.Stats().Completed)
}

func ExampleWorkers() {
	ctx := context.Background()
	// Two goroutines and a queue of eight tasks: submitting more waits for room, or for ctx.
	w := asyncengine.NewWorkers(2, 8)
	defer w.Close()
	futures := make([]*asyncengine.Future[int], 5)
	for i := range futures {
		futures[i] = asyncengine.Go(ctx, w, func(context.Context) (int, error) { return i * 10, nil })
	}
	vals, err := asyncengine.All(ctx, futures...)
	fmt.Println(vals, err)
	// Output: [0 10 20 30 40] <nil>
}

func ExampleGo() {
	ctx := context.Background()
	w := asyncengine.NewWorkers(1, 1)
	defer w.Close()
	// A panicking task completes its future with a *PanicError instead of killing the process.
	_, err := asyncengine.Go(ctx, w, func(context.Context) (int, error) { panic("bad input") }).Await(ctx)
	var pe *asyncengine.PanicError
	fmt.Println(errors.As(err, &pe))
	// Output: true
}

// A task whose context ended before a worker took it never runs.
func TestCancelledTaskNeverRuns(t *testing.T) {
	w := asyncengine.NewWorkers(1, 4)
	defer w.Close()
	release := make(chan struct{})
	busy := asyncengine.Go(context.Background(), w, func(context.Context) (int, error) {
		<-release
		return 0, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	queued := asyncengine.Go(ctx, w, func(context.Context) (int, error) {
		ran = true
		return 1, nil
	})
	cancel()
	close(release)
	_, err := busy.Await(enginetest.Context(t))
	require.NoError(t, err)
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	<-queued.Done()
	_, err = queued.Await(wait)
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, ran)
}

func badIndex(s []int) int { return s[3] }

// A panic's message is one line that names it and the function that raised it (a log line, an
// HTTP error body); the stack stays in the error.
func TestPanicErrorMessage(t *testing.T) {
	ctx := context.Background()
	w := asyncengine.NewWorkers(1, 1)
	defer w.Close()
	_, err := asyncengine.Go(ctx, w, func(context.Context) (int, error) { return badIndex(nil), nil }).Await(ctx)
	var pe *asyncengine.PanicError
	require.ErrorAs(t, err, &pe)
	require.NotContains(t, err.Error(), "\n")
	require.Contains(t, err.Error(), "gosqla: panic: runtime error: index out of range [3] with length 0 (in github.com/gosqla/gosqla/asyncengine_test.badIndex (")
	require.Contains(t, err.Error(), "workers_test.go:")
	require.Contains(t, string(pe.Stack), "goroutine ")

	_, err = asyncengine.Go(ctx, w, func(context.Context) (int, error) { panic(errors.New("wrapped")) }).Await(ctx)
	require.ErrorContains(t, err, "gosqla: panic: wrapped (in github.com/gosqla/gosqla/asyncengine_test.TestPanicErrorMessage.func")
	require.EqualError(t, errors.Unwrap(err), "wrapped")
}
