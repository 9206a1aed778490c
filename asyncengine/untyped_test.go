package asyncengine_test

import (
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
)

// cacheModes are the statement_cache modes: none and simple send parameters without their types.
var cacheModes = []string{"none", "simple", "describe", "prepare"}

// eachCacheMode runs fn in a parallel subtest per PostgreSQL driver and statement_cache mode,
// each with a fresh database.
func eachCacheMode(t *testing.T, fn func(t *testing.T, e *asyncengine.Engine, drv, mode string)) {
	for _, drv := range []string{"pgx", "stdlib"} {
		for _, mode := range cacheModes {
			url := enginetest.BackendURL(t, drv)
			t.Run(drv+"/"+mode, func(t *testing.T) {
				t.Parallel()
				fn(t, newEngine(t, url, "statement_cache="+mode), drv, mode)
			})
		}
	}
}

type rowID [16]byte

// badValuer is a value pgx has an encoding for that fails as it is encoded.
type badValuer struct{}

func (badValuer) Value() (sqldriver.Value, error) { return nil, errors.New("no value today") }

// A uuid's bytes ([16]byte, a pointer to it, a named type over it, a slice of them for uuid[])
// and a struct or a map for json are stored alike in every statement_cache mode, also where the server is not asked for
// the parameters' types (none, simple), through Exec and a pipeline, on both PostgreSQL drivers;
// a []byte stays bytea and a nil pointer or map stays NULL.
func TestUntypedParamsStoreWhatDescribeStores(t *testing.T) {
	u := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	const ut = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
	id := rowID(u)
	type nested struct {
		Doc  jsonDoc        `json:"doc"`
		Tags []string       `json:"tags"`
		More map[string]any `json:"more"`
	}
	rows := [][]any{
		{1, u, jsonDoc{A: 1}, map[string]any{"b": "x", "a": 1.5}, []byte{0xde, 0xad}},
		{2, &u, &jsonDoc{A: 2}, nested{Doc: jsonDoc{A: 3}, Tags: []string{"t"}}, []byte{}},
		{3, id, map[string]any{}, &nested{More: map[string]any{"k": []any{1, "z"}}}, nil},
		{4, &id, map[string]any(nil), (*jsonDoc)(nil), []byte(nil)},
		{5, (*[16]byte)(nil), (*jsonDoc)(nil), map[string]int{"n": 7}, []byte("\x00")},
	}
	want := []string{
		"1|" + ut + `|{"a": 1}|{"a":1.5,"b":"x"}|\xdead`,
		"2|" + ut + `|{"a": 2}|{"doc":{"a":3},"tags":["t"],"more":null}|\x`,
		"3|" + ut + `|{}|{"doc":{"a":0},"tags":null,"more":{"k":[1,"z"]}}|NULL`,
		"4|" + ut + `|NULL|NULL|NULL`,
		`5|NULL|NULL|{"n":7}|\x00`,
	}
	eachCacheMode(t, func(t *testing.T, e *asyncengine.Engine, drv, mode string) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, `CREATE TABLE w (k int, u uuid, j jsonb, js json, b bytea); CREATE TABLE p (LIKE w)`)
		require.NoError(t, err)
		c, err := e.Connect(ctx)
		require.NoError(t, err)
		defer c.Close()
		stmts := []asyncengine.Statement{{SQL: "BEGIN"}}
		for _, r := range rows {
			_, err := e.Exec(ctx, `INSERT INTO w VALUES ($1, $2, $3, $4, $5)`, r...)
			require.NoError(t, err, "Exec of row %v", r[0])
			stmts = append(stmts, asyncengine.Statement{SQL: `INSERT INTO p VALUES ($1, $2, $3, $4, $5)`, Args: r})
		}
		stmts = append(stmts, asyncengine.Statement{SQL: "COMMIT"})
		_, err = c.Pipeline(ctx, stmts)
		require.NoError(t, err, "pipeline")
		for _, table := range []string{"w", "p"} {
			r, err := c.Query(ctx, `SELECT concat_ws('|', k, coalesce(u::text, 'NULL'), coalesce(j::text, 'NULL'), coalesce(js::text, 'NULL'), coalesce(b::text, 'NULL')) FROM `+table+` ORDER BY k`)
			require.NoError(t, err)
			var got []string
			for i := range r.Len() {
				var s string
				require.NoError(t, r.ScanRow(i, &s))
				got = append(got, s)
			}
			assert.Equal(t, want, got, "%s: table %s", mode, table)
		}

		// a named argument and a uuid compared in a WHERE clause take the same path
		r, err := e.Query(ctx, `SELECT count(*) FROM w WHERE u = :u AND j @> :j`, asyncengine.Named{"u": &id, "j": map[string]any{"a": 1}})
		require.NoError(t, err)
		var n int
		require.NoError(t, r.One(&n))
		assert.Equal(t, 1, n)
		// keys as a session's loads compare them
		r, err = e.Query(ctx, `SELECT count(*) FROM w WHERE u = ANY($1)`, [][16]byte{u, {1}})
		require.NoError(t, err)
		require.NoError(t, r.One(&n))
		assert.Equal(t, 4, n)
	})
}

// An argument that cannot be encoded fails the statement before it is sent with an
// *ArgumentError (ErrInvalidArgument) wrapping the driver's error, in every statement_cache
// mode, through Exec (Engine and Conn) and a pipeline carrying a COMMIT: never a COMMIT of unknown
// outcome, and the connection stays in service with its transaction as it was. (With
// descriptions, describe and prepare, pgx itself closes the connection when it cannot encode a
// pipeline's statement after queueing others; nothing ran, and the engine replaces it.)
func TestUnencodableArgumentIsAnArgumentError(t *testing.T) {
	unencodable := map[string]any{
		"chan":        make(chan int),             // no encoding in any mode
		"failing":     badValuer{},                // an encoding that fails as it runs
		"unmarshaled": struct{ F func() }{F: nil}, // a struct that is no JSON
	}
	eachCacheMode(t, func(t *testing.T, e *asyncengine.Engine, drv, mode string) {
		ctx := enginetest.Context(t)
		_, err := e.Exec(ctx, `CREATE TABLE t (k int, j jsonb)`)
		require.NoError(t, err)
		for name, arg := range unencodable {
			t.Run(name, func(t *testing.T) {
				_, err := e.Exec(ctx, `INSERT INTO t VALUES (1, $1)`, arg)
				requireArgumentError(t, err)
				if mode == "none" || mode == "simple" {
					if name != "failing" {
						assert.Contains(t, err.Error(), "argument $1")
						assert.Contains(t, err.Error(), "statement_cache=describe")
					}
				}

				c, err := e.Connect(ctx)
				require.NoError(t, err)
				defer c.Close()
				id := c.ID()
				invalidations := e.Stats().Invalidations
				// the two INSERTs differ in their text: with descriptions pgx names the statement
				// at fault by its SQL only
				stmts := []asyncengine.Statement{
					{SQL: "BEGIN"},
					{SQL: "INSERT INTO t VALUES ($1, $2)", Args: []any{1, `{"a":1}`}},
					{SQL: "INSERT INTO t (k, j) VALUES ($1, $2)", Args: []any{2, arg}},
					{SQL: "COMMIT"},
				}
				_, err = c.Pipeline(ctx, stmts)
				requireArgumentError(t, err)
				var pe *asyncengine.PipelineError
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, 2, pe.Index, "the statement at fault")
				assert.False(t, errors.Is(e.ClassifyCommitError(err), asyncengine.ErrCommitUnknown), "COMMIT was never sent: %v", e.ClassifyCommitError(err))
				described := mode == "describe" || mode == "prepare"
				switch {
				case drv == "pgx" && !described:
					assert.True(t, pe.NotExecuted, "a pgx pipeline runs none of its statements")
				case drv == "pgx":
					// pgx closed the connection; the next call checks out another
					id = 0
				default:
					// database/sql runs a pipeline's statements one by one: BEGIN and the first
					// INSERT ran, and the transaction goes on
					_, err := c.Exec(ctx, "ROLLBACK")
					require.NoError(t, err)
				}
				r, err := c.Query(ctx, "SELECT count(*) FROM t")
				require.NoError(t, err, "the connection is in service")
				var n int
				require.NoError(t, r.One(&n))
				assert.Zero(t, n, "nothing was committed")
				if id != 0 {
					assert.Equal(t, id, c.ID(), "the same connection")
					assert.Equal(t, invalidations, e.Stats().Invalidations)
				}

				// and inside a Tx, which goes on
				err = e.Begin(ctx, func(tx *asyncengine.Conn) error {
					_, err := tx.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", 3, arg)
					requireArgumentError(t, err)
					_, err = tx.Exec(ctx, "INSERT INTO t VALUES ($1, $2)", 4, `{"b":2}`)
					return err
				})
				require.NoError(t, err)
				_, err = e.Exec(ctx, "DELETE FROM t")
				require.NoError(t, err)
			})
		}
	})
}

func requireArgumentError(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, asyncengine.ErrInvalidArgument)
	var ae *asyncengine.ArgumentError
	require.ErrorAs(t, err, &ae)
	var enc *driver.EncodeError
	require.ErrorAs(t, err, &enc, "the driver's error is reachable")
	require.NotNil(t, errors.Unwrap(ae))
	assert.False(t, errors.Is(err, asyncengine.ErrCommitUnknown))
	assert.False(t, errors.Is(err, asyncengine.ErrPendingRollback))
	assert.True(t, strings.HasPrefix(ae.Error(), "gosqla: an argument cannot be encoded"), fmt.Sprint(ae))
}
