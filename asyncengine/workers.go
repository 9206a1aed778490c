package asyncengine

import (
	"context"
	"sync"
	"sync/atomic"
)

// Workers is a bounded pool of goroutines: Size goroutines take tasks from a queue of at most
// QueueSize. Submitting to a full queue waits, and gives up when ctx ends (backpressure). A task
// that panics completes with a *PanicError carrying its stack. Close waits for running tasks.
//
// Workers runs every call of a blocking driver and every RunSync function, so that a fan-out of
// any width runs at most Size of them at once.
type Workers struct {
	size    int
	queue   chan func()
	handoff chan func() // unbuffered: a send succeeds only when a worker is idle
	quit    chan struct{}

	mu     sync.RWMutex // held for reading while submitting, for writing by Close
	closed bool
	wg     sync.WaitGroup

	startMu sync.Mutex
	started int

	closeOnce sync.Once
	running   atomic.Int64
	submitted atomic.Int64
	completed atomic.Int64
	panics    atomic.Int64
	direct    atomic.Int64
}

// WorkerStats is a snapshot of a Workers pool.
type WorkerStats struct {
	Size      int   // goroutines at most
	Started   int   // goroutines started so far (they start on demand)
	Running   int64 // tasks running now
	Queued    int   // tasks waiting for a goroutine
	Submitted int64
	Completed int64
	Panics    int64
	// Direct counts blocking driver calls that ran beside the workers because every worker was
	// busy: such a call holds a connection, so it is bounded by the pool's capacity, and it must not
	// wait behind RunSync tasks that may be waiting for that very connection.
	Direct int64
}

// NewWorkers returns a pool of size goroutines and a queue of queueSize tasks.
func NewWorkers(size, queueSize int) *Workers {
	if size < 1 {
		size = 1
	}
	if queueSize < 1 {
		queueSize = 1
	}
	return &Workers{size: size, queue: make(chan func(), queueSize), handoff: make(chan func()), quit: make(chan struct{})}
}

// Size is the number of goroutines.
func (w *Workers) Size() int { return w.size }

// Stats returns a snapshot.
func (w *Workers) Stats() WorkerStats {
	w.startMu.Lock()
	started := w.started
	w.startMu.Unlock()
	return WorkerStats{
		Size: w.size, Started: started, Running: w.running.Load(), Queued: len(w.queue),
		Submitted: w.submitted.Load(), Completed: w.completed.Load(), Panics: w.panics.Load(),
		Direct: w.direct.Load(),
	}
}

// Submit queues task. It waits while the queue is full, and returns ctx's error if ctx ends first
// or ErrWorkersClosed after Close; the task does not run then.
func (w *Workers) Submit(ctx context.Context, task func()) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrWorkersClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.submitted.Add(1)
	w.ensureWorker() // a full queue needs a worker to drain it before the send can succeed
	select {
	case w.queue <- task:
		// checked again with the task queued: two submits that both saw an idle worker before
		// either was queued would otherwise leave the second waiting behind the first for good
		w.ensureWorker()
		return nil
	case <-ctx.Done():
		w.submitted.Add(-1)
		return ctx.Err()
	case <-w.quit:
		w.submitted.Add(-1)
		return ErrWorkersClosed
	}
}

// ensureWorker starts another goroutine when fewer than size run and none is idle.
func (w *Workers) ensureWorker() {
	w.startMu.Lock()
	defer w.startMu.Unlock()
	if w.started < w.size && int64(w.started)-w.running.Load() <= int64(len(w.queue)) {
		w.started++
		w.wg.Add(1)
		go w.loop()
	}
}

func (w *Workers) loop() {
	defer w.wg.Done()
	for {
		select {
		case task := <-w.queue:
			w.run(task)
		case task := <-w.handoff:
			w.run(task)
		case <-w.quit:
			return
		}
	}
}

func (w *Workers) run(task func()) {
	w.running.Add(1)
	defer func() {
		w.running.Add(-1)
		w.completed.Add(1)
	}()
	task()
}

// Go runs fn on a worker and returns its future. A panic in fn completes the future with a
// *PanicError. If ctx ends before a worker takes fn, fn never runs and the future completes
// with ctx's error. Go needs no connection: it is the way to run CPU-only stages of a pipeline
// on the bounded workers.
//
// Called with the context a task of w was given, Go runs fn at once on the caller's worker
// instead of queueing it: a task waiting for a task it queued on its own full pool would wait
// forever.
func Go[T any](ctx context.Context, w *Workers, fn func(context.Context) (T, error)) *Future[T] {
	if w.owns(ctx) {
		v, err := runTask(ctx, w, fn)
		return Ready(v, err)
	}
	f, resolve := NewPromise[T]()
	err := w.Submit(ctx, func() {
		resolve(runTask(ctx, w, fn))
	})
	if err != nil {
		var zero T
		resolve(zero, err)
	}
	return f
}

type workerKey struct{}

// owns reports a context given to a task of w.
func (w *Workers) owns(ctx context.Context) bool {
	v, _ := ctx.Value(workerKey{}).(*Workers)
	return v == w
}

// runTask runs fn as a task of w: not at all when ctx has ended, a panic returned as a
// *PanicError, and fn's context marked as w's so that nested calls run inline.
func runTask[T any](ctx context.Context, w *Workers, fn func(context.Context) (T, error)) (T, error) {
	var v T
	if err := ctx.Err(); err != nil {
		return v, err // given up before it started: it never runs
	}
	if !w.owns(ctx) {
		ctx = context.WithValue(ctx, workerKey{}, w)
	}
	err := CatchPanic(func() error {
		var err error
		v, err = fn(ctx)
		return err
	})
	if _, ok := err.(*PanicError); ok {
		w.panics.Add(1)
	}
	return v, err
}

// do runs a blocking driver call on an idle worker and waits for it. When no worker is idle the
// call runs on a goroutine of its own (see WorkerStats.Direct) rather than queue behind tasks
// that may be waiting for the connection this call holds.
func (w *Workers) do(fn func()) {
	done := make(chan struct{})
	task := func() {
		defer close(done)
		fn()
	}
	w.mu.RLock()
	if !w.closed {
		w.ensureWorker()
	}
	w.mu.RUnlock()
	select {
	case w.handoff <- task:
		w.submitted.Add(1)
	default:
		// owned by this caller, which waits for it below
		w.direct.Add(1)
		go task()
	}
	<-done
}

// Close stops the goroutines after their running tasks; queued tasks that never started are
// run to completion first, so no future is left pending.
func (w *Workers) Close() error {
	w.closeOnce.Do(func() {
		close(w.quit)
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.wg.Wait()
		for {
			select {
			case task := <-w.queue:
				w.run(task)
			default:
				return
			}
		}
	})
	return nil
}
