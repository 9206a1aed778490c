package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/sqlview"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

func backends(t *testing.T) map[string]string {
	return map[string]string{
		"postgresql": enginetest.NewDatabase(t),
		"sqlite":     "sqlite:///" + filepath.Join(t.TempDir(), "service.db"),
	}
}

// TestMigrationsShareTheEnginePool: the migrations run through the *sql.DB view on the engine's
// own connections, once; the engine then finds the schema.
func TestMigrationsShareTheEnginePool(t *testing.T) {
	for name, url := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := enginetest.Context(t)
			e, err := asyncengine.New(url + map[bool]string{true: "&", false: "?"}[strings.Contains(url, "?")] + "pool_size=1&max_overflow=0")
			require.NoError(t, err)
			defer e.Close()
			db := sqlview.OpenDB(e)
			defer db.Close()
			n, err := migrate(ctx, db, name == "postgresql")
			require.NoError(t, err)
			assert.Equal(t, len(migrations), n)
			n, err = migrate(ctx, db, name == "postgresql")
			require.NoError(t, err)
			assert.Zero(t, n, "applied migrations are not applied again")

			s := e.Stats()
			assert.EqualValues(t, 1, s.Connects, "the migrations used the engine's one connection")
			assert.Zero(t, s.CheckedOut)
			_, err = e.Exec(ctx, "INSERT INTO authors (name) VALUES ('x')")
			require.NoError(t, err, "the engine sees the migrated schema")
		})
	}
}

// TestTracedService: each request is a span; the session's round trip is one child span whose
// events are the statements that travelled together.
func TestTracedService(t *testing.T) {
	for name, url := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := enginetest.Context(t)
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			defer tp.Shutdown(context.Background())
			e, err := open(ctx, url, tp)
			require.NoError(t, err)
			defer e.Close()
			srv := httptest.NewServer(newHandler(e, tp))
			defer srv.Close()
			exp.Reset() // the migrations' spans

			resp, err := http.Post(srv.URL+"/authors?name=Ann", "", nil)
			require.NoError(t, err)
			var a Author
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
			resp.Body.Close()
			require.Equal(t, http.StatusCreated, resp.StatusCode)
			assert.Equal(t, "Ann", a.Name)
			assert.NotZero(t, a.ID)

			spans := exp.GetSpans()
			var request, batch *tracetest.SpanStub
			for i := range spans {
				switch spans[i].Name {
				case "POST /authors":
					request = &spans[i]
				case "BATCH":
					batch = &spans[i]
				}
			}
			require.NotNil(t, request, "spans: %v", spanNames(spans))
			require.NotNil(t, batch, "spans: %v", spanNames(spans))
			assert.Equal(t, request.SpanContext.SpanID(), batch.Parent.SpanID(), "the round trip is a child of the request")
			var ops []string
			for _, ev := range batch.Events {
				for _, kv := range ev.Attributes {
					if kv.Key == "db.operation.name" {
						ops = append(ops, kv.Value.AsString())
					}
				}
			}
			if name == "sqlite" {
				// an INSERT on SQLite cannot check its own row count: the COMMIT follows once the
				// rows are counted
				assert.Equal(t, []string{"BEGIN", "INSERT"}, ops)
			} else {
				assert.Equal(t, []string{"BEGIN", "INSERT", "COMMIT"}, ops, "one round trip carries the whole unit of work")
			}
			exp.Reset()

			resp, err = http.Get(srv.URL + "/authors/" + itoa(a.ID))
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			assert.Contains(t, string(body), `"name":"Ann"`)
			spans = exp.GetSpans()
			var get *tracetest.SpanStub
			for i := range spans {
				if spans[i].Name == "GET /authors/{id}" {
					get = &spans[i]
				}
			}
			require.NotNil(t, get)
			children := 0
			for _, s := range spans {
				if s.Parent.SpanID() == get.SpanContext.SpanID() {
					children++
					assert.Equal(t, name, attr(s, "db.system"))
				}
			}
			assert.Positive(t, children, "the read is traced under the request: %v", spanNames(spans))

			resp, err = http.Get(srv.URL + "/authors/999")
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusNotFound, resp.StatusCode)
			assert.Zero(t, e.Stats().CheckedOut, "every request's session returned its connection")
		})
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

func attr(s tracetest.SpanStub, key string) any {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.AsInterface()
		}
	}
	return nil
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
