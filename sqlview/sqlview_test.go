package sqlview_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"math/big"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/sqlview"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

func urls(t *testing.T) map[string]string {
	pg := enginetest.NewDatabase(t)
	return map[string]string{
		"pgx":    pg,
		"stdlib": strings.Replace(pg, "postgresql://", "postgresql+stdlib://", 1),
		"sqlite": "sqlite:///" + filepath.Join(t.TempDir(), "v.db"),
	}
}

func open(t *testing.T, url string) (*asyncengine.Engine, *sql.DB) {
	t.Helper()
	e, err := asyncengine.New(url)
	require.NoError(t, err)
	db := sqlview.OpenDB(e)
	t.Cleanup(func() {
		require.NoError(t, db.Close())
		require.NoError(t, e.Close())
	})
	return e, db
}

// TestViewSharesThePool: database/sql's connections are the engine's, returned after each use,
// and bounded by the engine's limits.
func TestViewSharesThePool(t *testing.T) {
	u := urls(t) // the test cluster's goroutines start here
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), goleak.IgnoreAnyFunction("database/sql.(*DB).connectionOpener"))
	for _, name := range []string{"pgx", "stdlib", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			q := "pool_size=1&max_overflow=0&pool_timeout=0.2"
			if name != "sqlite" {
				q += "&connect_timeout=10" // connecting on a loaded machine is not what this test waits for
			}
			e, db := open(t, enginetest.WithQuery(u[name], q))
			ctx := enginetest.Context(t)
			kv := "kv_" + name
			_, err := db.ExecContext(ctx, "CREATE TABLE "+kv+" (k text PRIMARY KEY, v integer)")
			require.NoError(t, err)
			ph := "$1, $2"
			if name == "sqlite" {
				ph = "?, ?"
			}
			res, err := db.ExecContext(ctx, "INSERT INTO "+kv+" VALUES ("+ph+")", "a", 1)
			require.NoError(t, err)
			n, err := res.RowsAffected()
			require.NoError(t, err)
			assert.EqualValues(t, 1, n)

			var v int
			require.NoError(t, db.QueryRowContext(ctx, "SELECT v FROM "+kv).Scan(&v))
			assert.Equal(t, 1, v)
			s := e.Stats()
			assert.Equal(t, 0, s.CheckedOut, "the connection went back to the engine")
			assert.Equal(t, 1, s.CheckedIn)
			assert.EqualValues(t, 1, s.Connects, "one physical connection served both")
			assert.Equal(t, 0, db.Stats().Idle)

			held, err := e.Connect(ctx)
			require.NoError(t, err)
			err = db.QueryRowContext(ctx, "SELECT v FROM "+kv).Scan(&v)
			require.ErrorIs(t, err, asyncengine.ErrPoolTimeout, "the engine's limit bounds database/sql")
			require.NoError(t, held.Close())
			require.NoError(t, db.QueryRowContext(ctx, "SELECT v FROM "+kv).Scan(&v))

			_, err = db.ExecContext(ctx, "SELECT 1", sql.Named("x", 1))
			require.ErrorIs(t, err, sqlview.ErrNamedArgs)
		})
	}
}

// TestViewValuesAreFaithful: every PostgreSQL value reaches database/sql without loss, in the
// form pgx's own database/sql driver gives it.
func TestViewValuesAreFaithful(t *testing.T) {
	for _, name := range []string{"pgx", "stdlib"} {
		t.Run(name, func(t *testing.T) {
			_, db := open(t, urls(t)[name])
			ctx := enginetest.Context(t)
			rows, err := db.QueryContext(ctx, `SELECT 7::int4, 9000000000::int8, 2::int2, 1.5::float4, 12345678901234567890.123456789::numeric,
				'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{"b": 1, "a": [1, 2]}'::json, '\x00ff'::bytea,
				'2024-02-29 12:34:56.789+00'::timestamptz, '{x,"y z"}'::text[], NULL::int, true, '1 day 02:00'::interval,
				'192.168.0.1/24'::inet`)
			require.NoError(t, err)
			defer rows.Close()
			types, err := rows.ColumnTypes()
			require.NoError(t, err)
			assert.Equal(t, "INT4", types[0].DatabaseTypeName())
			assert.Equal(t, "NUMERIC", types[4].DatabaseTypeName())
			assert.Equal(t, "_TEXT", types[9].DatabaseTypeName())
			require.True(t, rows.Next(), "%v", rows.Err())
			var (
				i4, i8, i2  int64
				f4          float64
				num, id, js string
				ba          []byte
				ts          time.Time
				arr         pgtype.FlatArray[string]
				null        sql.NullInt64
				b           bool
				iv, inet    string
			)
			m := pgtype.NewMap()
			require.NoError(t, rows.Scan(&i4, &i8, &i2, &f4, &num, &id, &js, &ba, &ts, m.SQLScanner(&arr), &null, &b, &iv, &inet))
			assert.Equal(t, []any{int64(7), int64(9000000000), int64(2), 1.5}, []any{i4, i8, i2, f4})
			assert.Equal(t, "12345678901234567890.123456789", num)
			assert.Equal(t, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", id)
			assert.Equal(t, `{"b": 1, "a": [1, 2]}`, js, "json as the server holds it")
			assert.Equal(t, []byte{0, 0xff}, ba)
			assert.True(t, ts.Equal(time.Date(2024, 2, 29, 12, 34, 56, 789e6, time.UTC)))
			assert.Equal(t, pgtype.FlatArray[string]{"x", "y z"}, arr)
			assert.False(t, null.Valid)
			assert.True(t, b)
			assert.Equal(t, "1 day 02:00:00", iv)
			assert.Equal(t, "192.168.0.1/24", inet)
			require.NoError(t, rows.Err())
			if name == "pgx" {
				var date string
				require.NoError(t, db.QueryRowContext(ctx, "SELECT 'infinity'::date").Scan(&date))
				assert.Equal(t, "infinity", date)
			}
		})
	}
}

// TestViewTransactions: isolation levels and read-only transactions on PostgreSQL, the options
// SQLite lacks refused, commit and rollback through the engine.
func TestViewTransactions(t *testing.T) {
	u := urls(t)
	t.Run("pgx", func(t *testing.T) {
		e, db := open(t, u["pgx"])
		ctx := enginetest.Context(t)
		_, err := db.ExecContext(ctx, "CREATE TABLE t (x int)")
		require.NoError(t, err)

		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true})
		require.NoError(t, err)
		var level, ro string
		require.NoError(t, tx.QueryRowContext(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&level, &ro))
		assert.Equal(t, "serializable", level)
		assert.Equal(t, "on", ro)
		_, err = tx.ExecContext(ctx, "INSERT INTO t VALUES (1)")
		require.Error(t, err, "a read-only transaction refuses writes")
		require.NoError(t, tx.Rollback())

		tx, err = db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "INSERT INTO t VALUES (1)")
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
		tx, err = db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "INSERT INTO t VALUES (2)")
		require.NoError(t, err)
		require.NoError(t, tx.Rollback())
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n))
		assert.Equal(t, 1, n)
		assert.Equal(t, 0, e.Stats().CheckedOut)

		_, err = db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelLinearizable})
		require.ErrorIs(t, err, sqlview.ErrIsolation)
	})
	t.Run("sqlite", func(t *testing.T) {
		_, db := open(t, u["sqlite"])
		ctx := enginetest.Context(t)
		_, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		require.ErrorIs(t, err, sqlview.ErrIsolation)
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "CREATE TABLE t (x int)")
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
	})
}

// TestViewLostConnection: a connection the server dropped is invalidated in the engine and
// discarded by database/sql; the next call gets a fresh one.
func TestViewLostConnection(t *testing.T) {
	e, db := open(t, enginetest.WithQuery(urls(t)["pgx"], "pool_size=2"))
	ctx := enginetest.Context(t)
	c, err := db.Conn(ctx)
	require.NoError(t, err)
	var pid int
	require.NoError(t, c.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	_, err = db.ExecContext(ctx, "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	// the server may take a moment to close the socket: the first failing call is the one checked
	deadline := time.Now().Add(10 * time.Second)
	for err = c.PingContext(ctx); err == nil && time.Now().Before(deadline); err = c.PingContext(ctx) {
		time.Sleep(10 * time.Millisecond)
	}
	require.Error(t, err)
	var de *asyncengine.DisconnectError
	assert.True(t, errors.As(err, &de) || errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "bad connection"), err)
	require.NoError(t, c.Close())
	assert.GreaterOrEqual(t, e.Stats().Invalidations, int64(1))
	var one int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))
	assert.Equal(t, 0, e.Stats().CheckedOut)
}

// TestViewCancellation: a cancelled context stops a running statement.
func TestViewCancellation(t *testing.T) {
	e, db := open(t, urls(t)["pgx"])
	ctx, cancel := context.WithTimeout(enginetest.Context(t), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := db.ExecContext(ctx, "SELECT pg_sleep(10)")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
	var one int
	require.NoError(t, db.QueryRowContext(enginetest.Context(t), "SELECT 1").Scan(&one))
	assert.Equal(t, 0, e.Stats().CheckedOut)
}

// TestViewPassesArgumentsToTheDriver: values database/sql would refuse (slices, netip, pgtype)
// reach pgx, which encodes them; prepared statements run through the engine.
func TestViewPassesArgumentsToTheDriver(t *testing.T) {
	for _, name := range []string{"pgx", "stdlib"} {
		t.Run(name, func(t *testing.T) {
			_, db := open(t, urls(t)[name])
			ctx := enginetest.Context(t)
			var arr, addr, num string
			require.NoError(t, db.QueryRowContext(ctx, "SELECT $1::int4[], $2::inet, $3::numeric",
				[]int32{1, 2, 3}, netip.MustParseAddr("10.0.0.1"), pgtype.Numeric{Int: big.NewInt(12345), Exp: -2, Valid: true}).Scan(&arr, &addr, &num))
			assert.Equal(t, "{1,2,3}", arr)
			assert.Equal(t, "10.0.0.1/32", addr)
			assert.Equal(t, "123.45", num)

			st, err := db.PrepareContext(ctx, "SELECT $1::int + 1")
			require.NoError(t, err)
			defer st.Close()
			for i := range 3 {
				var n int
				require.NoError(t, st.QueryRowContext(ctx, i).Scan(&n))
				assert.Equal(t, i+1, n)
			}
		})
	}
}

// Rows stream: a result read in part and closed frees its connection, and a failure after the
// first rows reaches rows.Err.
func TestRowsStream(t *testing.T) {
	t.Parallel()
	for name, url := range urls(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, db := open(t, url)
			ctx := enginetest.Context(t)
			series := "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000) SELECT n FROM s"
			rows, err := db.QueryContext(ctx, series)
			require.NoError(t, err)
			for i := 0; i < 3; i++ {
				require.True(t, rows.Next())
				var n int64
				require.NoError(t, rows.Scan(&n))
				require.Equal(t, int64(i+1), n)
			}
			require.NoError(t, rows.Close())
			var one int
			require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))

			if name == "sqlite" {
				return // SQLite's division by zero is NULL
			}
			rows, err = db.QueryContext(ctx, "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 5) SELECT 10 / (3 - n) FROM s")
			require.NoError(t, err)
			for rows.Next() {
			}
			require.ErrorContains(t, rows.Err(), "division by zero")
			require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))
		})
	}
}

// TestRowsLostConnection: a connection the server drops while rows stream ends them with the
// disconnect, not driver.ErrBadConn (the query ran: database/sql must not run it again), and
// database/sql discards the connection: the next query runs on a fresh one.
func TestRowsLostConnection(t *testing.T) {
	for _, name := range []string{"pgx", "stdlib"} {
		t.Run(name, func(t *testing.T) {
			url := urls(t)[name]
			e, db := open(t, url)
			ctx := enginetest.Context(t)
			// generate_series in the select list streams: the server is still sending when the
			// backend is terminated
			rows, err := db.QueryContext(ctx, "SELECT generate_series(1, 5000000) AS n")
			require.NoError(t, err)
			for i := 0; i < 3; i++ {
				require.True(t, rows.Next())
			}
			enginetest.Shared(t).TerminateBackends(t, url)
			n := 3
			for rows.Next() {
				n++
			}
			err = rows.Err()
			require.Error(t, err)
			assert.Less(t, n, 5000000)
			assert.False(t, errors.Is(err, driver.ErrBadConn), "not retried: %v", err)
			var de *asyncengine.DisconnectError
			assert.ErrorAs(t, err, &de)
			require.NoError(t, rows.Close())
			assert.GreaterOrEqual(t, e.Stats().Invalidations, int64(1))

			var one int
			require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one), "the next query runs on a fresh connection")
			assert.Equal(t, 1, one)
			assert.Equal(t, 0, e.Stats().CheckedOut)
		})
	}
}

// json and jsonb reach database/sql as the text the server holds, also where a number in it is
// beyond what a Go number holds.
func TestViewJSONIsRawText(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"pgx", "stdlib"} {
		t.Run(name, func(t *testing.T) {
			_, db := open(t, urls(t)[name])
			ctx := enginetest.Context(t)
			var js, jsb string
			require.NoError(t, db.QueryRowContext(ctx, `SELECT '{"x":1e400}'::json, '{"x": 1e400}'::jsonb`).Scan(&js, &jsb))
			assert.Equal(t, `{"x":1e400}`, js)
			assert.Contains(t, jsb, `"x": 1`)
		})
	}
}
