package asyncsession_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
)

type Reading struct {
	ID    int64     `db:"id,pk"`
	Label string    `db:"label"`
	At    time.Time `db:"at"`
	Note  *string   `db:"note"`
	Level int32     `db:"level"`
	Ok    bool      `db:"ok"`
}

func (Reading) TableName() string { return "readings" }

// Objects of one model whose changes touch the same columns go as one UPDATE on PostgreSQL (the
// first flush that updates the table reads its column types in the same pipeline, and updates
// one by one), and store what one UPDATE per object stores; an object changed otherwise has its
// own.
func TestUpdatesAsOneStatement(t *testing.T) {
	eachTracedBackend(t, func(t *testing.T, e *asyncengine.Engine, p *pipelines) {
		ctx := enginetest.Context(t)
		for _, q := range []string{
			"CREATE TABLE readings (id bigint PRIMARY KEY, label text NOT NULL, at timestamp NOT NULL, note text, level integer NOT NULL, ok boolean NOT NULL)",
			"INSERT INTO readings VALUES (1, 'r', '2000-01-01', NULL, 0, false), (2, 'r', '2000-01-01', NULL, 0, false), " +
				"(3, 'r', '2000-01-01', NULL, 0, false), (4, 'r', '2000-01-01', NULL, 0, false)",
		} {
			_, err := e.Exec(ctx, q)
			require.NoError(t, err)
		}
		s := newSession(t, e)
		rs, err := asyncsession.Select[Reading](ctx, s, "SELECT * FROM readings ORDER BY id").Await(ctx)
		require.NoError(t, err)
		require.Len(t, rs, 4)
		kolkata := time.FixedZone("IST", 5*3600+1800)
		at1 := time.Date(2021, 3, 4, 5, 6, 7, 891000000, kolkata)
		at2 := at1.Add(26*time.Hour + time.Microsecond)
		note := func(s string) *string { return &s }

		// the table's types are not known yet: one UPDATE per object, and the types are read
		for k, r := range rs {
			r.Label, r.At, r.Note, r.Level, r.Ok = "changed", at1, note("n"), int32(k), true
		}
		rs[3].At = at2
		await(t, s.Commit(ctx))
		assert.Len(t, p.updates(), 4)

		for k, r := range rs[:3] {
			r.At, r.Level, r.Ok = at2, int32(100+k), false
			r.Note = note(fmt.Sprint("note ", k))
		}
		rs[0].Note = nil
		rs[3].Level = 9
		await(t, s.Commit(ctx))
		sent := p.updates()
		if e.Dialect().Name() == "postgresql" {
			require.Len(t, sent, 2, "the three objects changed alike in one UPDATE, the other in its own")
			assert.Contains(t, sent[0].SQL, "unnest(")
		} else {
			assert.Len(t, sent, 4)
		}

		r, err := e.Query(ctx, "SELECT id, label, CAST(at AS text), note, level, ok FROM readings ORDER BY id")
		require.NoError(t, err)
		require.Equal(t, 4, r.Len())
		var stored []string
		for i := range r.Len() {
			var (
				id          int64
				label, when string
				text        *string
				level       int32
				ok          bool
			)
			require.NoError(t, r.ScanRow(i, &id, &label, &when, &text, &level, &ok))
			stored = append(stored, when)
			assert.Equal(t, "changed", label)
			if id == 4 {
				assert.Equal(t, int32(9), level)
				continue
			}
			k := int(id) - 1
			assert.Equal(t, int32(100+k), level)
			assert.False(t, ok)
			if k == 0 {
				assert.Nil(t, text, "nil is NULL")
			} else {
				require.NotNil(t, text)
				assert.Equal(t, fmt.Sprint("note ", k), *text)
			}
		}
		assert.Equal(t, []string{stored[3], stored[3], stored[3]}, stored[:3], "the instants stored as one UPDATE alone stores them")
	})
}

// A batch UPDATE checks, as a batch INSERT does, that the columns it writes have the types its
// arrays were typed for: after an ALTER TABLE … TYPE it writes nothing and fails with
// ErrTableChanged; after Rollback the changes are still to write, and are written right.
func TestUpdateBatchTableChanged(t *testing.T) {
	e := newEngine(t, enginetest.NewDatabase(t))
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE moments (id bigserial PRIMARY KEY, at timestamp NOT NULL)")
	require.NoError(t, err)
	s := newSession(t, e)
	ms := []*Moment{{}, {}}
	require.NoError(t, s.Add(ms[0], ms[1]))
	await(t, s.Commit(ctx))
	_, err = e.Exec(ctx, "ALTER TABLE moments ALTER at TYPE timestamptz USING at AT TIME ZONE 'UTC'")
	require.NoError(t, err)

	kolkata := time.FixedZone("IST", 5*3600+1800)
	at := time.Date(2020, 6, 1, 12, 0, 0, 0, kolkata)
	for _, m := range ms {
		m.At = at
	}
	_, err = s.Commit(ctx).Await(ctx)
	require.ErrorIs(t, err, asyncsession.ErrTableChanged)
	await(t, s.Rollback(ctx))
	await(t, s.Commit(ctx))
	assertInstants(t, e, at, 2)
}
