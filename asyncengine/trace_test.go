package asyncengine_test

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type traceKey struct{}

// recorder is a tracer of every kind that writes down each event and checks that an end
// receives the context its start returned.
type recorder struct {
	mu     sync.Mutex
	events []string
	t      *testing.T
	panics bool // every event panics once written down
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	if r.panics {
		panic("tracer bug: " + r.events[len(r.events)-1])
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func (r *recorder) start(ctx context.Context, kind string) context.Context {
	return context.WithValue(ctx, traceKey{}, kind)
}

func (r *recorder) end(ctx context.Context, kind string) {
	if !r.panics { // a start that panicked returned no context
		assert.Equal(r.t, kind, ctx.Value(traceKey{}), "the end gets the start's context")
	}
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return "error"
}

func (r *recorder) TraceQueryStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceQueryStartData) context.Context {
	r.add("query start %s args=%v", d.SQL, d.Args)
	return r.start(ctx, "query")
}
func (r *recorder) TraceQueryEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceQueryEndData) {
	r.end(ctx, "query")
	r.add("query end %s", errText(d.Err))
}
func (r *recorder) TraceCheckoutStart(ctx context.Context, e *asyncengine.Engine, d asyncengine.TraceCheckoutStartData) context.Context {
	r.add("checkout start")
	return r.start(ctx, "checkout")
}
func (r *recorder) TraceCheckoutEnd(ctx context.Context, e *asyncengine.Engine, d asyncengine.TraceCheckoutEndData) {
	r.end(ctx, "checkout")
	r.add("checkout end %s conn>0=%v", errText(d.Err), d.ConnID > 0)
}
func (r *recorder) TraceConnectStart(ctx context.Context, e *asyncengine.Engine, d asyncengine.TraceConnectStartData) context.Context {
	r.add("connect start")
	return r.start(ctx, "connect")
}
func (r *recorder) TraceConnectEnd(ctx context.Context, e *asyncengine.Engine, d asyncengine.TraceConnectEndData) {
	r.end(ctx, "connect")
	r.add("connect end %s", errText(d.Err))
}
func (r *recorder) TracePipelineStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TracePipelineStartData) context.Context {
	args := 0
	for _, st := range d.Statements {
		args += len(st.Args)
	}
	r.add("pipeline start %d statements, %d args", len(d.Statements), args)
	return r.start(ctx, "pipeline")
}
func (r *recorder) TracePipelineEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TracePipelineEndData) {
	r.end(ctx, "pipeline")
	r.add("pipeline end %d results %s", d.Results, errText(d.Err))
}
func (r *recorder) TraceCopyFromStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceCopyFromStartData) context.Context {
	r.add("copy start %s %v", d.Table, d.Columns)
	return r.start(ctx, "copy")
}
func (r *recorder) TraceCopyFromEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceCopyFromEndData) {
	r.end(ctx, "copy")
	r.add("copy end %d rows %s", d.Rows, errText(d.Err))
}
func (r *recorder) TraceTxStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceTxStartData) context.Context {
	r.add("tx start %q", d.Savepoint)
	return r.start(ctx, "tx")
}
func (r *recorder) TraceTxEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceTxEndData) {
	r.end(ctx, "tx")
	r.add("tx end %q commit=%v %s", d.Savepoint, d.Commit, errText(d.Err))
}

func tracedEngine(t *testing.T, url, query string) (*asyncengine.Engine, *recorder) {
	return tracedEngineTo(t, url, query, &recorder{t: t}, nil)
}

// tracedEngineTo is tracedEngine with the given recorder and logger (nil: the default).
func tracedEngineTo(t *testing.T, url, query string, rec *recorder, logger *slog.Logger) (*asyncengine.Engine, *recorder) {
	return engineTracedBy(t, enginetest.WithQuery(url, query), rec, logger), rec
}

// engineTracedBy is an engine on url with the given tracer and logger (nil: the default).
func engineTracedBy(t *testing.T, url string, tracer asyncengine.QueryTracer, logger *slog.Logger) *asyncengine.Engine {
	cfg, err := asyncengine.ParseConfig(url)
	require.NoError(t, err)
	cfg.Tracer = tracer
	cfg.Logger = logger
	e, err := asyncengine.NewWithConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// TestTracerSeesEveryEvent: checkout, connect, statements, pipelines with their statement
// count, COPY and transactions reach the tracer, each end with its start's context; arguments
// stay hidden without log_parameters.
func TestTracerSeesEveryEvent(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		e, rec := tracedEngine(t, url, "pool_size=1&max_overflow=0")
		ctx := enginetest.Context(t)
		sel := "SELECT $1::int"
		if e.Dialect().Name() == "sqlite" {
			sel = "SELECT ?"
		}

		_, err := e.Exec(ctx, "CREATE TABLE tr (id integer, name text)")
		require.NoError(t, err)
		assert.Equal(t, []string{"checkout start", "connect start", "connect end ok", "checkout end ok conn>0=true",
			"query start CREATE TABLE tr (id integer, name text) args=[]", "query end ok"}, rec.take())

		c, err := e.Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		assert.Equal(t, []string{"checkout start", "checkout end ok conn>0=true"}, rec.take(), "a pooled connection: no connect")

		_, err = c.Query(ctx, sel, 7)
		require.NoError(t, err)
		assert.Equal(t, []string{"query start " + sel + " args=[]", "query end ok"}, rec.take(), "arguments are hidden")

		_, err = c.Exec(ctx, "SELECT * FROM nowhere")
		require.Error(t, err)
		assert.Equal(t, []string{"query start SELECT * FROM nowhere args=[]", "query end error"}, rec.take())

		for _, err := range c.Stream(ctx, sel, 1) {
			require.NoError(t, err)
		}
		assert.Equal(t, []string{"query start " + sel + " args=[]", "query end ok"}, rec.take())

		_, err = c.Pipeline(ctx, []asyncengine.Statement{{SQL: sel, Args: []any{1}}, {SQL: sel, Args: []any{2}}, {SQL: "SELECT 3"}})
		require.NoError(t, err)
		assert.Equal(t, []string{"pipeline start 3 statements, 0 args", "pipeline end 3 results ok"}, rec.take())

		tx, err := c.Begin(ctx)
		require.NoError(t, err)
		sp, err := c.BeginNested(ctx)
		require.NoError(t, err)
		n, err := c.CopyFrom(ctx, "tr", []string{"id", "name"}, rowsOf([]any{1, "a"}, []any{2, "b"}))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		require.NoError(t, sp.Rollback(ctx))
		require.NoError(t, tx.Commit(ctx))
		ev := rec.take()
		assert.Equal(t, []string{`tx start ""`, "query start BEGIN args=[]", "query end ok",
			`tx start "gosqla_sp_1"`, "query start SAVEPOINT gosqla_sp_1 args=[]", "query end ok",
			"copy start tr [id name]"}, ev[:7])
		assert.Contains(t, ev, "copy end 2 rows ok")
		assert.Contains(t, ev, `tx end "gosqla_sp_1" commit=false ok`)
		assert.Equal(t, `tx end "" commit=true ok`, ev[len(ev)-1])

		_, err = c.Begin(ctx)
		require.NoError(t, err)
		rec.take()
		require.NoError(t, c.Close())
		assert.Equal(t, []string{`tx end "" commit=false error`}, rec.take(), "closing ends an open transaction's trace")
	})
}

// TestTracerSeesParametersWhenAsked: with log_parameters=true a tracer gets the arguments.
func TestTracerSeesParametersWhenAsked(t *testing.T) {
	e, rec := tracedEngine(t, enginetest.BackendURL(t, "pgx"), "log_parameters=true")
	ctx := enginetest.Context(t)
	_, err := e.Query(ctx, "SELECT $1::int", 42)
	require.NoError(t, err)
	assert.Contains(t, rec.take(), "query start SELECT $1::int args=[42]")

	c, err := e.Connect(ctx)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Pipeline(ctx, []asyncengine.Statement{{SQL: "SELECT $1::int", Args: []any{1}}, {SQL: "SELECT $1::int", Args: []any{2}}})
	require.NoError(t, err)
	assert.Contains(t, rec.take(), "pipeline start 2 statements, 2 args")
}

// TestTracerSeesFailedCheckout: a checkout that times out ends its trace with the error.
func TestTracerSeesFailedCheckout(t *testing.T) {
	e, rec := tracedEngine(t, enginetest.BackendURL(t, "pgx"), "pool_size=1&max_overflow=0&pool_timeout=0.05&connect_timeout=10")
	ctx := enginetest.Context(t)
	c, err := e.Connect(ctx)
	require.NoError(t, err)
	defer c.Close()
	rec.take()
	_, err = e.Connect(ctx)
	require.ErrorIs(t, err, asyncengine.ErrPoolTimeout)
	assert.Equal(t, []string{"checkout start", "checkout end error conn>0=false"}, rec.take())
}

func rowsOf(rows ...[]any) iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		for _, r := range rows {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// A tracer that panics in every event, on every kind of call: the panics are logged at warn
// level with their stacks, every call succeeds, and no connection or transaction is left behind.
func TestPanickingTracerIsContained(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		var log logBuffer
		e, rec := tracedEngineTo(t, url, "pool_size=1&max_overflow=0", &recorder{t: t, panics: true},
			slog.New(slog.NewTextHandler(&log, nil)))
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, "CREATE TABLE tr (id integer, name text)")
		require.NoError(t, err)
		_, err = e.Query(ctx, "SELECT 1")
		require.NoError(t, err)
		for _, err := range e.Stream(ctx, "SELECT 1") {
			require.NoError(t, err)
		}
		require.NoError(t, e.Begin(ctx, func(c *asyncengine.Conn) error {
			if _, err := c.Pipeline(ctx, []asyncengine.Statement{{SQL: "SELECT 1"}, {SQL: "SELECT 2"}}); err != nil {
				return err
			}
			sp, err := c.BeginNested(ctx)
			if err != nil {
				return err
			}
			if _, err := c.CopyFrom(ctx, "tr", []string{"id", "name"}, rowsOf([]any{1, "a"})); err != nil {
				return err
			}
			return sp.Commit(ctx)
		}))
		require.Error(t, e.Begin(ctx, func(c *asyncengine.Conn) error { return fmt.Errorf("rolled back") }))

		assert.Equal(t, 0, e.Stats().CheckedOut)
		res, err := e.Query(ctx, "SELECT count(*) FROM tr")
		require.NoError(t, err)
		var n int64
		require.NoError(t, res.One(&n))
		assert.EqualValues(t, 1, n, "the transaction committed")
		ev := rec.take()
		for _, want := range []string{"connect end ok", "checkout end ok conn>0=true", "pipeline end 2 results ok",
			"copy end 1 rows ok", `tx end "" commit=true ok`, `tx end "" commit=false ok`} {
			assert.Contains(t, ev, want)
		}
		for _, method := range []string{"TraceCheckoutStart", "TraceCheckoutEnd", "TraceConnectStart", "TraceConnectEnd",
			"TraceQueryStart", "TraceQueryEnd", "TracePipelineStart", "TracePipelineEnd", "TraceCopyFromStart",
			"TraceCopyFromEnd", "TraceTxStart", "TraceTxEnd"} {
			assert.Contains(t, log.String(), "method="+method)
		}
		assert.Contains(t, log.String(), "tracer panicked")
		assert.Contains(t, log.String(), "trace_test.go", "with the tracer's stack")
	})
}

// A nil pointer of a tracer type in Config.Tracer (chosen by a condition that was false) traces
// nothing, as a nil Tracer does, instead of crashing every statement.
func TestNilTracerPointerTracesNothing(t *testing.T) {
	enginetest.EachBackend(t, func(t *testing.T, url string) {
		cfg, err := asyncengine.ParseConfig(url)
		require.NoError(t, err)
		var tr *recorder
		cfg.Tracer = tr
		e, err := asyncengine.NewWithConfig(cfg)
		require.NoError(t, err)
		defer e.Close()
		ctx := enginetest.Context(t)
		_, err = e.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		require.NoError(t, e.Begin(ctx, func(c *asyncengine.Conn) error {
			_, err := c.Query(ctx, "SELECT 1")
			return err
		}))
	})
}

// switched is a recorder whose checkout tracing is an option; panics makes TracesCheckouts panic.
type switched struct {
	*recorder
	checkouts, panics bool
}

func (s switched) TracesCheckouts() bool {
	if s.panics {
		panic("tracer bug: TracesCheckouts")
	}
	return s.checkouts
}

// TestCheckoutTraceSwitch: a tracer that turns checkout tracing off is not called for
// checkouts, and still is for everything else; one that turns it on, or panics when asked, is.
func TestCheckoutTraceSwitch(t *testing.T) {
	url := enginetest.BackendURL(t, "pgx")
	for _, tc := range []struct {
		name              string
		checkouts, panics bool
		want              []string
	}{
		{"off", false, false, []string{"connect start", "connect end ok", "query start SELECT 1 args=[]", "query end ok"}},
		{"on", true, false, []string{"checkout start", "connect start", "connect end ok", "checkout end ok conn>0=true",
			"query start SELECT 1 args=[]", "query end ok"}},
		{"panics", false, true, []string{"checkout start", "connect start", "connect end ok", "checkout end ok conn>0=true",
			"query start SELECT 1 args=[]", "query end ok"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{t: t}
			var log logBuffer
			e := engineTracedBy(t, url, switched{rec, tc.checkouts, tc.panics}, slog.New(slog.NewTextHandler(&log, nil)))
			ctx := enginetest.Context(t)
			_, err := e.Query(ctx, "SELECT 1")
			require.NoError(t, err)
			assert.Equal(t, tc.want, rec.take())
			if tc.panics {
				assert.Contains(t, log.String(), "TracesCheckouts", "the panic is logged")
			}
		})
	}
}

// TestUntracedEngineCallAllocatesNoConn: without a tracer, Engine.Exec and Engine.Query keep
// their checkout's Conn on the stack (a tracer may keep the Conn it is handed, so with one it is
// on the heap): a call on the engine allocates what the same call on a checked-out Conn does.
func TestUntracedEngineCallAllocatesNoConn(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocations")
	}
	e, err := asyncengine.New(enginetest.WithQuery(enginetest.BackendURL(t, "pgx"), "pool_size=1&max_overflow=0"))
	require.NoError(t, err)
	defer e.Close()
	ctx := enginetest.Context(t)
	_, err = e.Exec(ctx, "SELECT 1")
	require.NoError(t, err)

	engineExec := testing.AllocsPerRun(200, func() { _, _ = e.Exec(ctx, "SELECT 1") })
	engineQuery := testing.AllocsPerRun(200, func() { _, _ = e.Query(ctx, "SELECT 1") })
	c, err := e.Connect(ctx)
	require.NoError(t, err)
	defer c.Close()
	connExec := testing.AllocsPerRun(200, func() { _, _ = c.Exec(ctx, "SELECT 1") })
	connQuery := testing.AllocsPerRun(200, func() { _, _ = c.Query(ctx, "SELECT 1") })
	assert.LessOrEqual(t, engineExec, connExec, "Engine.Exec allocates no Conn")
	assert.LessOrEqual(t, engineQuery, connQuery, "Engine.Query allocates no Conn")
}
