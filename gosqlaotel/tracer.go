// Package gosqlaotel connects a gosqla engine to OpenTelemetry: a Tracer for Config.Tracer that
// turns the engine's trace events into spans following OpenTelemetry's database semantic
// conventions, and RegisterMetrics, which exposes the pool's and the workers' statistics as
// asynchronous instruments. Only programs that import this package depend on OpenTelemetry.
//
// # Spans
//
// A statement is a client span named after its operation and table ("SELECT users", "INSERT
// orders", or the operation alone), with db.system (and db.system.name) "postgresql" or
// "sqlite", db.query.text (the SQL as sent, never its arguments), db.operation.name,
// db.collection.name when the statement names one table, db.namespace (the database),
// server.address and server.port. A failed statement records its error and sets the span's
// status to Error; without log_parameters=true the recorded error shows only its SQLSTATE and
// Go type, since a server's message may quote argument values.
//
// A pipeline — the statements a session sends together — is one span named "BATCH" with
// db.operation.batch.size, and one "db.query" event per statement (a pipeline of one statement
// is a span of that statement): a trace shows one round trip
// where there was one. COPY (CopyFrom) is a span "COPY table"; a transaction is a span
// "transaction" from BEGIN to COMMIT or ROLLBACK (gosqla.tx.commit says which) when the
// transaction is Conn.Begin's (a session's BEGIN and COMMIT travel inside its pipelines, so they
// show as events of its BATCH spans). What runs in the transaction — BEGIN, its statements,
// pipelines, COPY, a "savepoint" span with its own, COMMIT — is a child of its span when the
// context it is given is the one the transaction began with; a span the caller starts inside
// keeps its own children. Opening a physical connection is a span "connect". Checkouts are spans
// ("gosqla.checkout") only with WithCheckoutSpans(true): they are frequent and usually take well
// under a microsecond. Without it the engine does not call the tracer for checkouts at all
// (asyncengine.CheckoutTraceSwitch), so a checkout costs what it does untraced.
package gosqlaotel

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the spans and instruments.
const ScopeName = "github.com/gosqla/gosqla/gosqlaotel"

// Option configures a Tracer or RegisterMetrics.
type Option func(*options)

type options struct {
	tp        trace.TracerProvider
	mp        metricProvider
	checkouts bool
	queryText bool
}

// WithTracerProvider sets the provider of the tracer (default: otel.GetTracerProvider()).
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tp = tp } }

// WithCheckoutSpans makes each checkout from the pool a span (default off).
func WithCheckoutSpans(on bool) Option { return func(o *options) { o.checkouts = on } }

// WithQueryText sets whether spans carry db.query.text (default on; arguments are never
// included).
func WithQueryText(on bool) Option { return func(o *options) { o.queryText = on } }

func build(opts []Option) options {
	o := options{queryText: true}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Tracer implements every tracer interface of asyncengine; set it as Config.Tracer.
type Tracer struct {
	tracer    trace.Tracer
	checkouts bool
	queryText bool
	servers   sync.Map // *asyncengine.Engine -> []attribute.KeyValue
	templates sync.Map // templateKey -> *template
	cached    atomic.Int64
}

var _ interface {
	asyncengine.QueryTracer
	asyncengine.CheckoutTracer
	asyncengine.ConnectTracer
	asyncengine.PipelineTracer
	asyncengine.CopyFromTracer
	asyncengine.TxTracer
	asyncengine.CheckoutTraceSwitch
} = (*Tracer)(nil)

// NewTracer returns a tracer for Config.Tracer.
func NewTracer(opts ...Option) *Tracer {
	o := build(opts)
	tp := o.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), checkouts: o.checkouts, queryText: o.queryText}
}

// otelTracer is the tracer spans start from: a zero Tracer uses the global provider, as
// NewTracer() does.
func (t *Tracer) otelTracer() trace.Tracer {
	if t.tracer == nil {
		return otel.GetTracerProvider().Tracer(ScopeName)
	}
	return t.tracer
}

// server returns the attributes that name the engine's database, computed once per engine.
func (t *Tracer) server(e *asyncengine.Engine) []attribute.KeyValue {
	if v, ok := t.servers.Load(e); ok {
		return v.([]attribute.KeyValue)
	}
	attrs := serverAttributes(e.Config())
	t.servers.Store(e, attrs)
	return attrs
}

func serverAttributes(cfg *asyncengine.Config) []attribute.KeyValue {
	system := string(cfg.Dialect)
	attrs := []attribute.KeyValue{attribute.String("db.system", system), attribute.String("db.system.name", system)}
	if system == "sqlite" {
		name := strings.TrimPrefix(cfg.DSN, "file:")
		if i := strings.IndexByte(name, '?'); i >= 0 {
			name = name[:i]
		}
		if u, err := url.PathUnescape(name); err == nil {
			name = u
		}
		return append(attrs, attribute.String("db.namespace", name))
	}
	pc, err := pgconn.ParseConfig(cfg.DSN)
	if err != nil {
		return attrs
	}
	if pc.Database != "" {
		attrs = append(attrs, attribute.String("db.namespace", pc.Database))
	}
	if pc.Host != "" {
		attrs = append(attrs, attribute.String("server.address", pc.Host), attribute.Int("server.port", int(pc.Port)))
	}
	return attrs
}

// spanName is "OPERATION table", or the operation alone.
func spanName(op, table string) string {
	switch {
	case op == "":
		return "sql"
	case table == "":
		return op
	}
	return op + " " + table
}

func (t *Tracer) start(ctx context.Context, e *asyncengine.Engine, name string, kind trace.SpanKind, extra ...attribute.KeyValue) context.Context {
	srv := t.server(e)
	attrs := make([]attribute.KeyValue, 0, len(srv)+len(extra))
	attrs = append(attrs, srv...)
	attrs = append(attrs, extra...)
	ctx, _ = t.otelTracer().Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return ctx
}

// end ends the span of ctx, recording err.
func end(ctx context.Context, e *asyncengine.Engine, err error, attrs ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if len(attrs) > 0 {
		span.SetAttributes(attrs...)
	}
	if err != nil {
		recordError(span, err, e.Config().LogParameters)
	}
	span.End()
}

// recordError records err on span. Without log_parameters a server error's text is left out: it
// may quote argument values.
func recordError(span trace.Span, err error, params bool) {
	var coded interface{ SQLState() string }
	typ := fmt.Sprintf("%T", err)
	if errors.As(err, &coded) {
		typ = coded.SQLState()
		span.SetAttributes(attribute.String("db.response.status_code", typ))
	}
	span.SetAttributes(attribute.String("error.type", typ))
	if params {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return
	}
	msg := fmt.Sprintf("%s (message hidden: it may quote argument values; log_parameters=true shows it)", typ)
	span.RecordError(errors.New(msg))
	span.SetStatus(codes.Error, msg)
}

// statement appends a statement's operation, table and text to attrs.
func (t *Tracer) statement(sql string, attrs []attribute.KeyValue) (op, table string, _ []attribute.KeyValue) {
	op, table = Operation(sql)
	if op != "" {
		attrs = append(attrs, attribute.String("db.operation.name", op))
	}
	if table != "" {
		attrs = append(attrs, attribute.String("db.collection.name", table))
	}
	if t.queryText {
		attrs = append(attrs, attribute.String("db.query.text", sql))
	}
	return op, table, attrs
}

// maxTemplates bounds the statements whose span name and attributes are kept: an application
// runs a bounded set of statements, and one that builds SQL by hand without bound must not grow
// the cache for ever.
const maxTemplates = 4096

type templateKey struct {
	e   *asyncengine.Engine
	sql string
}

// template is what every span of one statement on one engine starts with, and the attributes of
// its event in a pipeline's span.
type template struct {
	name  string
	opts  []trace.SpanStartOption
	event []attribute.KeyValue
}

func (t *Tracer) template(e *asyncengine.Engine, sql string) *template {
	key := templateKey{e, sql}
	if v, ok := t.templates.Load(key); ok {
		return v.(*template)
	}
	srv := t.server(e)
	op, table, attrs := t.statement(sql, append(make([]attribute.KeyValue, 0, len(srv)+3), srv...))
	tp := &template{name: spanName(op, table), opts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)},
		event: attrs[len(srv):len(attrs):len(attrs)]}
	if t.cached.Load() < maxTemplates {
		if _, loaded := t.templates.LoadOrStore(key, tp); !loaded {
			t.cached.Add(1)
		}
	}
	return tp
}

func (t *Tracer) TraceQueryStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceQueryStartData) context.Context {
	tp := t.template(c.Engine(), d.SQL)
	ctx, _ = t.otelTracer().Start(inTx(ctx, c), tp.name, tp.opts...)
	return ctx
}

func (t *Tracer) TraceQueryEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceQueryEndData) {
	end(ctx, c.Engine(), d.Err)
}

// TracesCheckouts reports whether checkouts are spans (WithCheckoutSpans): when they are not, the
// engine does not call the tracer for checkouts at all.
func (t *Tracer) TracesCheckouts() bool { return t.checkouts }

func (t *Tracer) TraceCheckoutStart(ctx context.Context, e *asyncengine.Engine, _ asyncengine.TraceCheckoutStartData) context.Context {
	if !t.checkouts {
		return ctx
	}
	ctx, _ = t.otelTracer().Start(ctx, "gosqla.checkout", trace.WithSpanKind(trace.SpanKindInternal))
	return ctx
}

func (t *Tracer) TraceCheckoutEnd(ctx context.Context, e *asyncengine.Engine, d asyncengine.TraceCheckoutEndData) {
	if !t.checkouts {
		return
	}
	end(ctx, e, d.Err, attribute.Int64("gosqla.conn.id", int64(d.ConnID)))
}

func (t *Tracer) TraceConnectStart(ctx context.Context, e *asyncengine.Engine, _ asyncengine.TraceConnectStartData) context.Context {
	return t.start(ctx, e, "connect", trace.SpanKindClient)
}

func (t *Tracer) TraceConnectEnd(ctx context.Context, e *asyncengine.Engine, d asyncengine.TraceConnectEndData) {
	// a failed connect's message names the server, never an argument: it is kept
	span := trace.SpanFromContext(ctx)
	if d.Err != nil {
		span.RecordError(d.Err)
		span.SetStatus(codes.Error, d.Err.Error())
	} else {
		span.SetAttributes(attribute.Int64("gosqla.conn.id", int64(d.ConnID)))
	}
	span.End()
}

func (t *Tracer) TracePipelineStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TracePipelineStartData) context.Context {
	if len(d.Statements) == 1 {
		// one statement is one operation, named as such
		return t.TraceQueryStart(ctx, c, asyncengine.TraceQueryStartData{SQL: d.Statements[0].SQL})
	}
	ctx = t.start(inTx(ctx, c), c.Engine(), "BATCH", trace.SpanKindClient,
		attribute.String("db.operation.name", "BATCH"), attribute.Int("db.operation.batch.size", len(d.Statements)))
	span := trace.SpanFromContext(ctx)
	// one buffer for every event: the span copies an event's attributes
	var attrs []attribute.KeyValue
	for i, st := range d.Statements {
		attrs = append(append(attrs[:0], attribute.Int("gosqla.statement.index", i)), t.template(c.Engine(), st.SQL).event...)
		span.AddEvent("db.query", trace.WithAttributes(attrs...))
	}
	return ctx
}

func (t *Tracer) TracePipelineEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TracePipelineEndData) {
	var pe *asyncengine.PipelineError
	if errors.As(d.Err, &pe) {
		trace.SpanFromContext(ctx).SetAttributes(attribute.Int("gosqla.statement.failed", pe.Index))
	}
	end(ctx, c.Engine(), d.Err)
}

func (t *Tracer) TraceCopyFromStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceCopyFromStartData) context.Context {
	return t.start(inTx(ctx, c), c.Engine(), spanName("COPY", d.Table), trace.SpanKindClient,
		attribute.String("db.operation.name", "COPY"), attribute.String("db.collection.name", d.Table))
}

func (t *Tracer) TraceCopyFromEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceCopyFromEndData) {
	end(ctx, c.Engine(), d.Err, attribute.Int64("gosqla.copy.rows", d.Rows))
}

func (t *Tracer) TraceTxStart(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceTxStartData) context.Context {
	name := "transaction"
	if d.Savepoint != "" {
		name = "savepoint"
	}
	parent := trace.SpanContextFromContext(ctx)
	ctx = t.start(inTx(ctx, c), c.Engine(), name, trace.SpanKindClient)
	return context.WithValue(ctx, txParentKey{}, parent)
}

// txParentKey holds, in a transaction span's context, the span the transaction began under.
type txParentKey struct{}

// inTx makes what runs in an open transaction (a statement, a pipeline, COPY, a savepoint) a child
// of the transaction's span, when the caller's context still carries the span the transaction
// began under — the usual case, one context used around and inside Begin. A context carrying a
// span of the caller's own, started inside the transaction, keeps it.
func inTx(ctx context.Context, c *asyncengine.Conn) context.Context {
	txCtx := c.TxTraceContext()
	if txCtx == nil {
		return ctx
	}
	parent, ok := txCtx.Value(txParentKey{}).(trace.SpanContext)
	if !ok || !parent.Equal(trace.SpanContextFromContext(ctx)) {
		return ctx
	}
	return trace.ContextWithSpan(ctx, trace.SpanFromContext(txCtx))
}

func (t *Tracer) TraceTxEnd(ctx context.Context, c *asyncengine.Conn, d asyncengine.TraceTxEndData) {
	end(ctx, c.Engine(), d.Err, attribute.Bool("gosqla.tx.commit", d.Commit))
}

// Operation returns a statement's operation (its first keyword, upper-cased) and the table it
// names when that is plain to see (SELECT … FROM t, INSERT INTO t, UPDATE t, DELETE FROM t),
// "" where it is not. A WITH whose first query writes (WITH p AS (INSERT INTO t …) SELECT …, as
// a session's flush sends its INSERTs on PostgreSQL) is that write.
func Operation(sql string) (op, table string) {
	rest := skipSpaceAndComments(sql)
	word, rest := nextWord(rest)
	if word == "" {
		return "", ""
	}
	op = strings.ToUpper(word)
	var after string
	switch op {
	case "WITH":
		if _, body, ok := strings.Cut(rest, "("); ok {
			if inner, t := Operation(body); inner == "INSERT" || inner == "UPDATE" || inner == "DELETE" {
				return inner, t
			}
		}
		return op, ""
	case "SELECT", "DELETE":
		after = "FROM"
	case "INSERT":
		after = "INTO"
	case "UPDATE":
		return op, identifier(skipSpaceAndComments(rest))
	default:
		return op, ""
	}
	for {
		rest = skipSpaceAndComments(rest)
		if rest == "" {
			return op, ""
		}
		word, rest = nextWord(rest)
		if word == "" {
			rest = rest[1:]
			continue
		}
		if strings.EqualFold(word, after) {
			return op, identifier(skipSpaceAndComments(rest))
		}
	}
}

func skipSpaceAndComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return ""
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return ""
			}
			s = s[i+2:]
		default:
			return s
		}
	}
}

// nextWord returns the keyword or bare identifier at the start of s ("" if s starts otherwise).
func nextWord(s string) (string, string) {
	i := 0
	for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > 0 && s[i] >= '0' && s[i] <= '9') {
		i++
	}
	return s[:i], s[i:]
}

// identifier reads a possibly qualified, possibly quoted table name.
func identifier(s string) string {
	var b strings.Builder
	for {
		if strings.HasPrefix(s, `"`) {
			j := strings.IndexByte(s[1:], '"')
			if j < 0 {
				return ""
			}
			b.WriteString(s[1 : j+1])
			s = s[j+2:]
		} else {
			w, rest := nextWord(s)
			if w == "" {
				return b.String()
			}
			b.WriteString(w)
			s = rest
		}
		if !strings.HasPrefix(s, ".") {
			return b.String()
		}
		b.WriteByte('.')
		s = s[1:]
	}
}
