package gosqlaotel_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/gosqlaotel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

func traced(t *testing.T, url string, opts ...gosqlaotel.Option) (*asyncengine.Engine, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg, err := asyncengine.ParseConfig(url)
	require.NoError(t, err)
	cfg.Tracer = gosqlaotel.NewTracer(append([]gosqlaotel.Option{gosqlaotel.WithTracerProvider(tp)}, opts...)...)
	e, err := asyncengine.NewWithConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e, exp
}

func attrs(s tracetest.SpanStub) map[string]any {
	m := map[string]any{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

// TestSpansFollowTheConventions: statements, pipelines, COPY, transactions and connects become
// spans with OpenTelemetry's database attributes, on PostgreSQL and SQLite.
func TestSpansFollowTheConventions(t *testing.T) {
	pg := enginetest.NewDatabase(t)
	for name, url := range map[string]string{"postgresql": pg, "sqlite": "sqlite:///" + filepath.Join(t.TempDir(), "o.db")} {
		t.Run(name, func(t *testing.T) {
			e, exp := traced(t, url)
			ctx := enginetest.Context(t)
			ph := "$1"
			if name == "sqlite" {
				ph = "?"
			}
			c, err := e.Connect(ctx)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Exec(ctx, "CREATE TABLE users (id integer, name text)")
			require.NoError(t, err)
			exp.Reset()

			_, err = c.Query(ctx, "SELECT name FROM users WHERE id = "+ph, 4242)
			require.NoError(t, err)
			spans := exp.GetSpans()
			require.Len(t, spans, 1)
			s := spans[0]
			assert.Equal(t, "SELECT users", s.Name)
			a := attrs(s)
			assert.Equal(t, name, a["db.system"])
			assert.Equal(t, name, a["db.system.name"])
			assert.Equal(t, "SELECT", a["db.operation.name"])
			assert.Equal(t, "users", a["db.collection.name"])
			assert.Equal(t, "SELECT name FROM users WHERE id = "+ph, a["db.query.text"])
			assert.NotEmpty(t, a["db.namespace"])
			if name == "postgresql" {
				assert.NotEmpty(t, a["server.address"])
				assert.NotZero(t, a["server.port"])
			}
			for _, v := range a {
				assert.NotContains(t, fmt.Sprint(v), "4242", "arguments are never in a span")
			}
			exp.Reset()

			_, err = c.Exec(ctx, "INSERT INTO nowhere VALUES ("+ph+")", "secret-value")
			require.Error(t, err)
			s = exp.GetSpans()[0]
			assert.Equal(t, "INSERT nowhere", s.Name)
			assert.Equal(t, codes.Error, s.Status.Code)
			assert.NotContains(t, s.Status.Description, "secret-value")
			require.NotEmpty(t, s.Events, "the error is recorded")
			assert.Equal(t, "exception", s.Events[0].Name)
			exp.Reset()

			_, err = c.Pipeline(ctx, []asyncengine.Statement{
				{SQL: "INSERT INTO users VALUES (" + ph + ", 'a')", Args: []any{1}},
				{SQL: "UPDATE users SET name = 'b'"},
				{SQL: "SELECT count(*) FROM users"},
			})
			require.NoError(t, err)
			spans = exp.GetSpans()
			require.Len(t, spans, 1, "one round trip, one span")
			s = spans[0]
			assert.Equal(t, "BATCH", s.Name)
			assert.EqualValues(t, 3, attrs(s)["db.operation.batch.size"])
			require.Len(t, s.Events, 3)
			var ops []string
			for _, ev := range s.Events {
				assert.Equal(t, "db.query", ev.Name)
				for _, kv := range ev.Attributes {
					if kv.Key == "db.operation.name" {
						ops = append(ops, kv.Value.AsString())
					}
				}
			}
			assert.Equal(t, []string{"INSERT", "UPDATE", "SELECT"}, ops)
			exp.Reset()

			tx, err := c.Begin(ctx)
			require.NoError(t, err)
			n, err := c.CopyFrom(ctx, "users", []string{"id", "name"}, func(yield func([]any, error) bool) {
				_ = yield([]any{2, "c"}, nil) && yield([]any{3, "d"}, nil)
			})
			require.NoError(t, err)
			require.EqualValues(t, 2, n)
			require.NoError(t, tx.Commit(ctx))
			spans = exp.GetSpans()
			got := names(spans)
			assert.Contains(t, got, "COPY users")
			assert.Equal(t, "transaction", got[len(got)-1])
			assert.Equal(t, true, attrs(spans[len(spans)-1])["gosqla.tx.commit"])
			exp.Reset()

			// what runs in a transaction is a child of its span, a savepoint's of the savepoint's;
			// a span the caller starts inside the transaction keeps its own children
			outer, root := sdktrace.NewTracerProvider().Tracer("test").Start(ctx, "request")
			var ownSpan string
			require.NoError(t, e.Begin(outer, func(c *asyncengine.Conn) error {
				if _, err := c.Exec(outer, "UPDATE users SET name = 'e'"); err != nil {
					return err
				}
				sp, err := c.BeginNested(outer)
				if err != nil {
					return err
				}
				if _, err := c.Query(outer, "SELECT count(*) FROM users"); err != nil {
					return err
				}
				if err := sp.Commit(outer); err != nil {
					return err
				}
				mine, own := sdktrace.NewTracerProvider().Tracer("test").Start(outer, "mine")
				defer own.End()
				ownSpan = own.SpanContext().SpanID().String()
				_, err = c.Exec(mine, "DELETE FROM users WHERE id = 0")
				return err
			}))
			root.End()
			byName := map[string]tracetest.SpanStub{}
			for _, s := range exp.GetSpans() {
				byName[s.Name] = s
			}
			txSpan, spSpan := byName["transaction"], byName["savepoint"]
			assert.Equal(t, root.SpanContext().SpanID(), txSpan.Parent.SpanID(), "the transaction is the request's")
			for _, child := range []string{"BEGIN", "UPDATE users", "savepoint", "COMMIT"} {
				assert.Equal(t, txSpan.SpanContext.SpanID(), byName[child].Parent.SpanID(), "%s is the transaction's", child)
			}
			for _, child := range []string{"SAVEPOINT", "SELECT users", "RELEASE"} {
				assert.Equal(t, spSpan.SpanContext.SpanID(), byName[child].Parent.SpanID(), "%s is the savepoint's", child)
			}
			assert.Equal(t, ownSpan, byName["DELETE users"].Parent.SpanID().String(), "the caller's own span keeps its child")
		})
	}
}

// TestConnectAndCheckoutSpans: connects are spans; checkouts only when asked.
func TestConnectAndCheckoutSpans(t *testing.T) {
	e, exp := traced(t, enginetest.NewDatabase(t), gosqlaotel.WithCheckoutSpans(true))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	assert.Equal(t, []string{"connect", "gosqla.checkout", "SELECT"}, names(exp.GetSpans()))
	exp.Reset()

	e2, exp2 := traced(t, enginetest.NewDatabase(t))
	_, err = e2.Exec(ctx, "SELECT 1")
	require.NoError(t, err)
	assert.Equal(t, []string{"connect", "SELECT"}, names(exp2.GetSpans()))

	// without checkout spans the engine is told not to call the tracer for checkouts
	assert.False(t, gosqlaotel.NewTracer().TracesCheckouts())
	assert.False(t, (&gosqlaotel.Tracer{}).TracesCheckouts())
	assert.True(t, gosqlaotel.NewTracer(gosqlaotel.WithCheckoutSpans(true)).TracesCheckouts())
}

// TestSpanShowsErrorTextWithLogParameters: log_parameters=true lets the server's message through.
func TestSpanShowsErrorTextWithLogParameters(t *testing.T) {
	e, exp := traced(t, enginetest.NewDatabase(t)+"&log_parameters=true")
	_, err := e.Exec(enginetest.Context(t), "SELECT * FROM nowhere")
	require.Error(t, err)
	s := exp.GetSpans()[len(exp.GetSpans())-1]
	assert.Contains(t, s.Status.Description, `relation "nowhere" does not exist`)
	assert.Equal(t, "42P01", attrs(s)["db.response.status_code"])
}

// TestMetricsReadTheStats: the instruments report what Stats and Workers().Stats say.
func TestMetricsReadTheStats(t *testing.T) {
	e, err := asyncengine.New(enginetest.NewDatabase(t) + "&pool_size=3&max_overflow=2")
	require.NoError(t, err)
	defer e.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	stop, err := gosqlaotel.RegisterMetrics(e, "main", gosqlaotel.WithMeterProvider(mp))
	require.NoError(t, err)

	ctx := enginetest.Context(t)
	c1, err := e.Connect(ctx)
	require.NoError(t, err)
	c2, err := e.Connect(ctx)
	require.NoError(t, err)
	require.NoError(t, c2.Close())
	defer c1.Close()

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					key := m.Name
					if st, ok := p.Attributes.Value(attribute.Key("db.client.connection.state")); ok {
						key += "/" + st.AsString()
					}
					pool, _ := p.Attributes.Value(attribute.Key("db.client.connection.pool.name"))
					assert.Equal(t, "main", pool.AsString())
					got[key] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] = p.Value
				}
			}
		}
	}
	assert.EqualValues(t, 1, got["db.client.connection.count/used"])
	assert.EqualValues(t, 1, got["db.client.connection.count/idle"])
	assert.EqualValues(t, 5, got["db.client.connection.max"])
	assert.EqualValues(t, 3, got["db.client.connection.idle.max"])
	assert.EqualValues(t, 2, got["gosqla.pool.connects"])
	assert.EqualValues(t, -1, got["gosqla.pool.overflow"])
	assert.EqualValues(t, e.Workers().Size(), got["gosqla.workers.size"])
	assert.Contains(t, got, "gosqla.workers.queued")

	// the same pool name twice on one provider would count the pool twice: refused until stopped
	_, err = gosqlaotel.RegisterMetrics(e, "main", gosqlaotel.WithMeterProvider(mp))
	require.ErrorContains(t, err, `pool name "main" is already registered`)
	require.NoError(t, stop())
	again, err := gosqlaotel.RegisterMetrics(e, "main", gosqlaotel.WithMeterProvider(mp))
	require.NoError(t, err)
	require.NoError(t, again())

	s := e.Stats().DBStats()
	assert.Equal(t, 5, s.MaxOpenConnections)
	assert.Equal(t, 2, s.OpenConnections)
	assert.Equal(t, 1, s.InUse)
	assert.Equal(t, 1, s.Idle)
}

func TestOperation(t *testing.T) {
	for sql, want := range map[string][2]string{
		"SELECT id FROM users WHERE x = $1":                {"SELECT", "users"},
		"select count(*) from public.\"Orders\" o":         {"SELECT", "public.Orders"},
		"  -- note\n/* c */ insert into t (a) values ($1)": {"INSERT", "t"},
		"UPDATE accounts SET balance = balance + 1":        {"UPDATE", "accounts"},
		"DELETE FROM sessions WHERE expires < now()":       {"DELETE", "sessions"},
		"SELECT 1":                             {"SELECT", ""},
		"SELECT * FROM (SELECT 1) s":           {"SELECT", ""},
		"BEGIN":                                {"BEGIN", ""},
		"WITH x AS (SELECT 1) SELECT * FROM x": {"WITH", ""},
		`WITH p AS (INSERT INTO "books" ("title") VALUES ($1) RETURNING "id") SELECT p.* FROM p`: {"INSERT", "books"},
		"":                            {"", ""},
		"CREATE TABLE users (id int)": {"CREATE", ""},
	} {
		op, table := gosqlaotel.Operation(sql)
		assert.Equal(t, want, [2]string{op, table}, sql)
	}
}

// A zero Tracer traces through the global provider, as NewTracer() does, instead of crashing.
func TestZeroTracerUsesTheGlobalProvider(t *testing.T) {
	cfg, err := asyncengine.ParseConfig(enginetest.BackendURL(t, "sqlite"))
	require.NoError(t, err)
	cfg.Tracer = &gosqlaotel.Tracer{}
	e, err := asyncengine.NewWithConfig(cfg)
	require.NoError(t, err)
	defer e.Close()
	_, err = e.Exec(enginetest.Context(t), "SELECT 1")
	require.NoError(t, err)
}
