package asyncengine

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
)

// QueryTracer traces the statements run on a connection (Exec, Query, Stream), in the shape of
// pgx's tracers: TraceQueryStart returns the context the statement runs under (a span's
// context), and TraceQueryEnd receives that context. Set one as Config.Tracer; a tracer that
// also implements CheckoutTracer, ConnectTracer, PipelineTracer, CopyFromTracer or TxTracer
// receives those events too.
//
// Arguments reach a tracer only with log_parameters=true: without it TraceQueryStartData.Args is
// nil. Tracers run on the caller's goroutine, inline with the statement: keep them quick. A
// panic in a tracer method is recovered and logged at warn level; the traced call goes on.
type QueryTracer interface {
	TraceQueryStart(ctx context.Context, c *Conn, data TraceQueryStartData) context.Context
	TraceQueryEnd(ctx context.Context, c *Conn, data TraceQueryEndData)
}

// TraceQueryStartData is a statement about to run.
type TraceQueryStartData struct {
	SQL  string // in the dialect's placeholder style, as sent
	Args []any  // nil unless log_parameters=true
}

// TraceQueryEndData is how a statement ended.
type TraceQueryEndData struct {
	RowsAffected int64 // rows changed (or, for a buffered query, returned); 0 for Stream
	Err          error
}

// CheckoutTracer traces checkouts from the engine's pool (Connect, and the checkout of Exec,
// Query, Begin and Stream on the engine).
type CheckoutTracer interface {
	TraceCheckoutStart(ctx context.Context, e *Engine, data TraceCheckoutStartData) context.Context
	TraceCheckoutEnd(ctx context.Context, e *Engine, data TraceCheckoutEndData)
}

// CheckoutTraceSwitch is implemented by a tracer whose checkout tracing is an option (checkouts
// are the most frequent event and usually take well under a microsecond, so an adapter may
// trace them only when asked). When TracesCheckouts reports false as the engine is created, the
// engine never calls the tracer's CheckoutTracer methods: a checkout then costs what it costs
// without a tracer.
type CheckoutTraceSwitch interface {
	TracesCheckouts() bool
}

// TraceCheckoutStartData is a checkout about to ask the pool.
type TraceCheckoutStartData struct{}

// TraceCheckoutEndData is how a checkout ended: the connection's ID, or the error.
type TraceCheckoutEndData struct {
	ConnID uint64
	Err    error
}

// ConnectTracer traces the opening of physical connections by the pool (not with
// poolclass=pgxpool, whose pool connects by itself).
type ConnectTracer interface {
	TraceConnectStart(ctx context.Context, e *Engine, data TraceConnectStartData) context.Context
	TraceConnectEnd(ctx context.Context, e *Engine, data TraceConnectEndData)
}

// TraceConnectStartData is a connection about to be opened.
type TraceConnectStartData struct{}

// TraceConnectEndData is how a connection attempt ended (the connect hooks included).
type TraceConnectEndData struct {
	ConnID uint64
	Err    error
}

// PipelineTracer traces Conn.Pipeline: the statements that travel together in one round trip
// (the session's pipelined rounds among them).
type PipelineTracer interface {
	TracePipelineStart(ctx context.Context, c *Conn, data TracePipelineStartData) context.Context
	TracePipelineEnd(ctx context.Context, c *Conn, data TracePipelineEndData)
}

// TracePipelineStartData is a pipeline about to be sent.
type TracePipelineStartData struct {
	// Statements are the pipeline's statements — of a PipelineStream, those it starts with (the
	// end's Results counts the ones it took later); their Args are nil unless
	// log_parameters=true.
	Statements []Statement
}

// TracePipelineEndData is how a pipeline ended: Err is a *PipelineError naming the failing
// statement, and Results the results of the statements before it.
type TracePipelineEndData struct {
	Results int
	Err     error
}

// CopyFromTracer traces Conn.CopyFrom.
type CopyFromTracer interface {
	TraceCopyFromStart(ctx context.Context, c *Conn, data TraceCopyFromStartData) context.Context
	TraceCopyFromEnd(ctx context.Context, c *Conn, data TraceCopyFromEndData)
}

// TraceCopyFromStartData is a bulk load about to start.
type TraceCopyFromStartData struct {
	Table   string
	Columns []string
}

// TraceCopyFromEndData is how a bulk load ended.
type TraceCopyFromEndData struct {
	Rows int64
	Err  error
}

// TxTracer traces transactions and savepoints from Begin (or BeginNested) to Commit or Rollback.
// The context TraceTxStart returns is kept with the Tx and handed to TraceTxEnd; the statements
// inside run under their own callers' contexts. A transaction still open when its connection is
// closed ends with Err set to ErrTxDone.
type TxTracer interface {
	TraceTxStart(ctx context.Context, c *Conn, data TraceTxStartData) context.Context
	TraceTxEnd(ctx context.Context, c *Conn, data TraceTxEndData)
}

// TraceTxStartData is a transaction (or a savepoint, Savepoint set) about to begin.
type TraceTxStartData struct {
	Savepoint string
}

// TraceTxEndData is how a transaction ended: Commit is false for a rollback.
type TraceTxEndData struct {
	Savepoint string
	Commit    bool
	Err       error
}

// tracers are Config.Tracer's interfaces, resolved once: a nil field costs one comparison.
type tracers struct {
	query    QueryTracer
	checkout CheckoutTracer
	connect  ConnectTracer
	pipeline PipelineTracer
	copy     CopyFromTracer
	tx       TxTracer
}

func newTracers(t QueryTracer, warn *slog.Logger) tracers {
	// a nil pointer in the interface (a tracer chosen by a condition that was false) traces
	// nothing, as a nil interface does
	if v := reflect.ValueOf(t); t == nil || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return tracers{}
	}
	g := &guardedTracer{query: t, warn: warn}
	ts := tracers{query: g}
	var ok bool
	if g.checkout, ok = t.(CheckoutTracer); ok && g.tracesCheckouts(t) {
		ts.checkout = g
	}
	if g.connect, ok = t.(ConnectTracer); ok {
		ts.connect = g
	}
	if g.pipeline, ok = t.(PipelineTracer); ok {
		ts.pipeline = g
	}
	if g.copy, ok = t.(CopyFromTracer); ok {
		ts.copy = g
	}
	if g.tx, ok = t.(TxTracer); ok {
		ts.tx = g
	}
	return ts
}

// tracesCheckouts is false for a CheckoutTraceSwitch that turns checkout tracing off; one that
// panics is asked nothing more and traces checkouts.
func (g *guardedTracer) tracesCheckouts(t QueryTracer) (on bool) {
	sw, ok := t.(CheckoutTraceSwitch)
	if !ok {
		return true
	}
	on = true
	defer g.recovered("TracesCheckouts", nil, nil)
	return sw.TracesCheckouts()
}

// guardedTracer calls the configured tracer's methods, recovering a panic in one: a tracer
// observes, as a notification hook does, so a panic in it is logged at warn level with its stack
// and the traced call goes on (with the context it had, when a start method panicked). The
// library's own state — a checked-out connection, an open transaction — is never left half-done
// by a tracer, whatever goroutine it runs on.
type guardedTracer struct {
	query    QueryTracer
	checkout CheckoutTracer
	connect  ConnectTracer
	pipeline PipelineTracer
	copy     CopyFromTracer
	tx       TxTracer
	warn     *slog.Logger
}

// recovered is deferred by each method; a start method passes its result and the context it
// was given, which the call goes on with if the tracer panicked.
func (g *guardedTracer) recovered(method string, out *context.Context, given context.Context) {
	v := recover()
	if v == nil {
		return
	}
	if out != nil {
		*out = given
	}
	g.warn.Warn("gosqla: tracer panicked; the traced call went on", "method", method, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

func (g *guardedTracer) TraceQueryStart(ctx context.Context, c *Conn, d TraceQueryStartData) (out context.Context) {
	defer g.recovered("TraceQueryStart", &out, ctx)
	return g.query.TraceQueryStart(ctx, c, d)
}
func (g *guardedTracer) TraceQueryEnd(ctx context.Context, c *Conn, d TraceQueryEndData) {
	defer g.recovered("TraceQueryEnd", nil, nil)
	g.query.TraceQueryEnd(ctx, c, d)
}
func (g *guardedTracer) TraceCheckoutStart(ctx context.Context, e *Engine, d TraceCheckoutStartData) (out context.Context) {
	defer g.recovered("TraceCheckoutStart", &out, ctx)
	return g.checkout.TraceCheckoutStart(ctx, e, d)
}
func (g *guardedTracer) TraceCheckoutEnd(ctx context.Context, e *Engine, d TraceCheckoutEndData) {
	defer g.recovered("TraceCheckoutEnd", nil, nil)
	g.checkout.TraceCheckoutEnd(ctx, e, d)
}
func (g *guardedTracer) TraceConnectStart(ctx context.Context, e *Engine, d TraceConnectStartData) (out context.Context) {
	defer g.recovered("TraceConnectStart", &out, ctx)
	return g.connect.TraceConnectStart(ctx, e, d)
}
func (g *guardedTracer) TraceConnectEnd(ctx context.Context, e *Engine, d TraceConnectEndData) {
	defer g.recovered("TraceConnectEnd", nil, nil)
	g.connect.TraceConnectEnd(ctx, e, d)
}
func (g *guardedTracer) TracePipelineStart(ctx context.Context, c *Conn, d TracePipelineStartData) (out context.Context) {
	defer g.recovered("TracePipelineStart", &out, ctx)
	return g.pipeline.TracePipelineStart(ctx, c, d)
}
func (g *guardedTracer) TracePipelineEnd(ctx context.Context, c *Conn, d TracePipelineEndData) {
	defer g.recovered("TracePipelineEnd", nil, nil)
	g.pipeline.TracePipelineEnd(ctx, c, d)
}
func (g *guardedTracer) TraceCopyFromStart(ctx context.Context, c *Conn, d TraceCopyFromStartData) (out context.Context) {
	defer g.recovered("TraceCopyFromStart", &out, ctx)
	return g.copy.TraceCopyFromStart(ctx, c, d)
}
func (g *guardedTracer) TraceCopyFromEnd(ctx context.Context, c *Conn, d TraceCopyFromEndData) {
	defer g.recovered("TraceCopyFromEnd", nil, nil)
	g.copy.TraceCopyFromEnd(ctx, c, d)
}
func (g *guardedTracer) TraceTxStart(ctx context.Context, c *Conn, d TraceTxStartData) (out context.Context) {
	defer g.recovered("TraceTxStart", &out, ctx)
	return g.tx.TraceTxStart(ctx, c, d)
}
func (g *guardedTracer) TraceTxEnd(ctx context.Context, c *Conn, d TraceTxEndData) {
	defer g.recovered("TraceTxEnd", nil, nil)
	g.tx.TraceTxEnd(ctx, c, d)
}

// traceArgs are a statement's arguments as a tracer may see them.
func (e *Engine) traceArgs(args []any) []any {
	if e.cfg.LogParameters {
		return args
	}
	return nil
}

// tracePipelineStart hands the pipeline's statements to the tracer, without their arguments
// unless log_parameters=true; it returns ctx as it is when no PipelineTracer is set.
func (c *Conn) tracePipelineStart(ctx context.Context, stmts []Statement) context.Context {
	if c.e.trace.pipeline == nil {
		return ctx
	}
	shown := stmts
	if !c.e.cfg.LogParameters {
		shown = make([]Statement, len(stmts))
		for i, st := range stmts {
			shown[i] = Statement{SQL: st.SQL}
		}
	}
	return c.e.trace.pipeline.TracePipelineStart(ctx, c, TracePipelineStartData{Statements: shown})
}

// traceTxEnd ends t's transaction trace, if it has one.
func (t *Tx) traceTxEnd(commit bool, err error) {
	if t.traceCtx == nil {
		return
	}
	ctx := t.traceCtx
	t.traceCtx = nil
	t.c.e.trace.tx.TraceTxEnd(ctx, t.c, TraceTxEndData{Savepoint: t.savepoint, Commit: commit, Err: err})
}

// traceTxStart starts a transaction trace; nil when no TxTracer is set.
func (c *Conn) traceTxStart(ctx context.Context, savepoint string) context.Context {
	if t := c.e.trace.tx; t != nil {
		return t.TraceTxStart(ctx, c, TraceTxStartData{Savepoint: savepoint})
	}
	return nil
}

// traceTxFailed ends the trace of a transaction whose BEGIN (or SAVEPOINT) failed.
func (c *Conn) traceTxFailed(tctx context.Context, savepoint string, err error) {
	if tctx != nil {
		c.e.trace.tx.TraceTxEnd(tctx, c, TraceTxEndData{Savepoint: savepoint, Err: err})
	}
}
