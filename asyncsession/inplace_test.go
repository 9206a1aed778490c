package asyncsession_test

import (
	"context"
	"math/big"
	"net/netip"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type InPlaceProfile struct {
	ID    int64          `db:"id,pk,default"`
	Email *string        `db:"email"`
	Tags  []string       `db:"tags"`
	Attrs map[string]any `db:"attrs"`
}

func (InPlaceProfile) TableName() string { return "inplace_profiles" }

// Changes made in place — through a pointer field, to an element of a slice, to a key of a map —
// leave the struct's own bytes as they were; Flush and Commit still send them.
func TestInPlaceChangesAreFlushed(t *testing.T) {
	e, ctx := postgresWith(t, InPlaceProfile{})

	email := "a@example.com"
	s := newSession(t, e)
	p := &InPlaceProfile{Email: &email, Tags: []string{"a", "b"}, Attrs: map[string]any{"k": "v"}}
	require.NoError(t, s.Add(p))
	await(t, s.Commit(ctx))

	s2 := newSession(t, e)
	got := await(t, asyncsession.Get[InPlaceProfile](ctx, s2, p.ID))
	*got.Email = "b@example.com"
	got.Tags[1] = "c"
	got.Attrs["k"] = "w"
	// Flush compares them by content (an autoflush looks at the struct's own bytes only)
	await(t, s2.Flush(ctx))
	r := await(t, s2.Execute(ctx, "SELECT email, tags[2], attrs->>'k' FROM inplace_profiles WHERE id = $1", p.ID))
	var gotEmail, tag, attr string
	require.NoError(t, r.One(&gotEmail, &tag, &attr))
	assert.Equal(t, []string{"b@example.com", "c", "w"}, []string{gotEmail, tag, attr})

	*got.Email = "c@example.com"
	await(t, s2.Commit(ctx))
	var stored string
	r2, err := e.Query(ctx, "SELECT email FROM inplace_profiles WHERE id = $1", p.ID)
	require.NoError(t, err)
	require.NoError(t, r2.One(&stored))
	assert.Equal(t, "c@example.com", stored, "Commit flushed a write through a pointer field")
}

// Ledger holds values that change in place below their field: a numeric's *big.Int, a map held
// in an interface, a slice inside a struct stored as JSON.
type Ledger struct {
	ID      int64          `db:"id,pk,default"`
	Balance pgtype.Numeric `db:"balance,type=numeric(12,2)"`
	Meta    any            `db:"meta,type=jsonb"`
	Audit   LedgerAudit    `db:"audit"`
}

type LedgerAudit struct {
	By    []string `json:"by"`
	Notes map[string]int
}

func (Ledger) TableName() string { return "ledgers" }

// TestChangesInPlaceBelowTheField: a change made below a field — a numeric's *big.Int set in
// place, a map inside an interface, a slice inside a struct — is written by Flush and Commit,
// as a change through a pointer field is; an object left alone writes nothing.
func TestChangesInPlaceBelowTheField(t *testing.T) {
	e, ctx := postgresWith(t, Ledger{})

	s := newSession(t, e)
	l := &Ledger{
		Balance: pgtype.Numeric{Int: big.NewInt(1000), Exp: -2, Valid: true},
		Meta:    map[string]any{"owner": "ann"},
		Audit:   LedgerAudit{By: []string{"ann"}, Notes: map[string]int{"opened": 1}},
	}
	require.NoError(t, s.Add(l))
	await(t, s.Commit(ctx))

	const row = "SELECT balance::text, meta->>'owner', audit->'by'->>0, (audit->'Notes'->>'opened')::int FROM ledgers WHERE id = $1"
	// read in the session's transaction after a Flush, committed after a Commit
	read := func(r *asyncengine.Result) (balance, owner, by string, opened int) {
		t.Helper()
		require.NoError(t, r.One(&balance, &owner, &by, &opened))
		return
	}
	xmin := func() string {
		t.Helper()
		r, err := e.Query(ctx, "SELECT xmin::text FROM ledgers WHERE id = $1", l.ID)
		require.NoError(t, err)
		var x string
		require.NoError(t, r.One(&x))
		return x
	}

	before := xmin()
	await(t, s.Commit(ctx))
	assert.Equal(t, before, xmin(), "an object left alone is not written")

	l.Balance.Int.SetInt64(12345)
	await(t, s.Flush(ctx))
	balance, _, _, _ := read(await(t, s.Execute(ctx, row, l.ID)))
	assert.Equal(t, "123.45", balance, "a *big.Int set in place is flushed")

	l.Meta.(map[string]any)["owner"] = "bob"
	l.Audit.By[0] = "bob"
	l.Audit.Notes["opened"] = 2
	await(t, s.Commit(ctx))
	committed, err := e.Query(ctx, row, l.ID)
	require.NoError(t, err)
	balance, owner, by, opened := read(committed)
	assert.Equal(t, []any{"123.45", "bob", "bob", 2}, []any{balance, owner, by, opened})

	before = xmin()
	await(t, s.Commit(ctx))
	assert.Equal(t, before, xmin(), "what was written is the new snapshot")
}

// Host is keyed by an inet: a netip.Prefix, a value whose address is known by the identity of a
// handle it points to.
type Host struct {
	Net  netip.Prefix `db:"net,pk,type=inet"`
	Name string       `db:"name"`
}

func (Host) TableName() string { return "hosts" }

// TestKeyKnownByAHandle: an object whose key points to a handle it is known by is updated by the
// key it had, changed or not, and an object left alone writes nothing.
func TestKeyKnownByAHandle(t *testing.T) {
	e, ctx := postgresWith(t, Host{})

	s := newSession(t, e)
	h := &Host{Net: netip.MustParsePrefix("10.0.0.1/32"), Name: "a"}
	require.NoError(t, s.Add(h))
	await(t, s.Commit(ctx))
	await(t, s.Commit(ctx))

	h.Name = "b"
	await(t, s.Commit(ctx))
	h.Net = netip.MustParsePrefix("10.0.0.2/32")
	await(t, s.Commit(ctx))
	r, err := e.Query(ctx, "SELECT net::text, name FROM hosts")
	require.NoError(t, err)
	var net, name string
	require.NoError(t, r.One(&net, &name))
	assert.Equal(t, []string{"10.0.0.2/32", "b"}, []string{net, name})
	assert.True(t, h.Net.Addr().Is4(), "the object's key is the address it was given")
}

// postgresWith is an engine on a new PostgreSQL database holding the tables of models.
func postgresWith(t *testing.T, models ...any) (*asyncengine.Engine, context.Context) {
	t.Helper()
	e, err := asyncengine.New(enginetest.NewDatabase(t))
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	ctx := enginetest.Context(t)
	require.NoError(t, asyncsession.CreateAll(ctx, e, models...))
	return e, ctx
}
