package asyncsession_test

import (
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/gosqla/gosqla/asyncsession"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Without autoflush, a query that loads Writer Joined must not undo the program's own change
// to an object's Writer (SelectIn leaves it: "loaded already, or the application's own").
func TestLoadKeepsUnflushedChange(t *testing.T) {
	for _, how := range []asyncsession.Strategy{asyncsession.SelectIn, asyncsession.Joined} {
		eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
			seedLibrary(t, e)
			ctx := enginetest.Context(t)
			s := newSession(t, e, asyncsession.AutoFlush(false))
			v := await(t, asyncsession.From[Volume](s).Filter("title", "t0-0").Load("Writer", how).One(ctx))
			other := await(t, asyncsession.From[Writer](s).Filter("name", "w3").One(ctx))
			require.Equal(t, "w0", v.Writer.Name)
			v.Writer = other // not flushed yet
			again := await(t, asyncsession.From[Volume](s).Filter("title", "t0-0").Load("Writer", how).One(ctx))
			require.Same(t, v, again)
			assert.Equal(t, "w3", v.Writer.Name, "strategy %d: the query put back the loaded writer", how)
			await(t, s.Commit(ctx))
			r, err := e.Query(ctx, "SELECT w.name FROM volumes v JOIN writers w ON w.id = v.writer_id WHERE v.title = 't0-0'")
			require.NoError(t, err)
			var name string
			require.NoError(t, r.One(&name))
			assert.Equal(t, "w3", name, "strategy %d: the change was lost", how)
		})
	}
}

func staffChain(t *testing.T, e *asyncengine.Engine) {
	ctx := enginetest.Context(t)
	relSchema(t, e)
	_, err := e.Exec(ctx, "INSERT INTO staff (id, name, manager_id) VALUES (1, 'boss', NULL), (2, 'mid', 1), (3, 'low', 2), (4, 'low2', 2)")
	require.NoError(t, err)
}

func TestJoinedSelfReferential(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		staffChain(t, e)
		ctx := enginetest.Context(t)
		s := newSession(t, e)
		q := asyncsession.From[Staff](s).Load("Manager.Manager", asyncsession.Joined).Load("Manager", asyncsession.Joined).OrderBy("id")
		t.Log(q.String())
		ss, err := q.All(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, ss, 4)
		assert.Nil(t, ss[0].Manager)
		assert.Same(t, ss[0], ss[1].Manager)
		assert.Same(t, ss[1], ss[2].Manager)
		assert.Same(t, ss[0], ss[2].Manager.Manager)
		assert.Same(t, ss[1], ss[3].Manager)
		// with a Join of the same relationship, a where on it and a limit
		q = asyncsession.From[Staff](s).Join("Manager").Where("manager.name = :n", asyncengine.Named{"n": "mid"}).Load("Manager", asyncsession.Joined).OrderBy("id DESC").Limit(1)
		t.Log(q.String())
		ss, err = q.All(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, ss, 1)
		assert.Equal(t, "low2", ss[0].Name)
		if e.Dialect().Name() == "postgresql" {
			q = asyncsession.From[Staff](s).Join("Reports").Load("Manager", asyncsession.Joined).OrderBy("id").Limit(1).SkipLocked()
			t.Log(q.String())
			ss, err = q.All(ctx).Await(ctx)
			require.NoError(t, err)
			require.Len(t, ss, 1)
		}
	})
}

type LongNode struct {
	ID                      int64     `db:"id,pk,default"`
	Name                    string    `db:"name"`
	ResponsibleSupervisorID *int64    `db:"responsible_supervisor_id,fk=long_nodes.id"`
	ResponsibleSupervisor   *LongNode `rel:"fk=responsible_supervisor_id"`
}

func (LongNode) TableName() string { return "long_nodes" }

// Joined aliases longer than PostgreSQL's 63 bytes are truncated by the server.
func TestJoinedLongPaths(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *asyncengine.Engine) {
		ctx := enginetest.Context(t)
		require.NoError(t, asyncsession.CreateAll(ctx, e, LongNode{}))
		_, err := e.Exec(ctx, "INSERT INTO long_nodes (id, name, responsible_supervisor_id) VALUES (1, 'a', NULL), (2, 'b', 1), (3, 'c', 2)")
		require.NoError(t, err)
		s := newSession(t, e)
		q := asyncsession.From[LongNode](s).Load("ResponsibleSupervisor", asyncsession.Joined).
			Load("ResponsibleSupervisor.ResponsibleSupervisor", asyncsession.Joined).
			Load("ResponsibleSupervisor.ResponsibleSupervisor.ResponsibleSupervisor", asyncsession.Joined).
			Load("ResponsibleSupervisor.ResponsibleSupervisor.ResponsibleSupervisor.ResponsibleSupervisor", asyncsession.Joined).OrderBy("id")
		t.Log(q.String())
		ns, err := q.All(ctx).Await(ctx)
		require.NoError(t, err)
		require.Len(t, ns, 3)
		assert.Same(t, ns[0], ns[2].ResponsibleSupervisor.ResponsibleSupervisor)
	})
}
