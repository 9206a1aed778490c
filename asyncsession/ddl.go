package asyncsession

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// CreateAll creates the tables of models (struct values or pointers) that do not exist yet, parents
// before children, in one transaction. Tables whose foreign keys form a cycle are created first and
// the key that closes the cycle added after (on PostgreSQL; SQLite takes a reference to a table it
// has not seen yet). The association table of a many-to-many (`through=`) is a model of its own:
// pass a struct mapping it (its two keys, each with its `fk=`) among models to create it.
func CreateAll(ctx context.Context, e *asyncengine.Engine, models ...any) error {
	ms, err := ordered(models)
	if err != nil {
		return err
	}
	stmts := make([]string, 0, len(ms))
	var keys []string // foreign keys to tables created later (a cycle), added once all exist
	created := map[string]bool{}
	for _, m := range ms {
		created[m.Table] = true
		stmt, later, err := createTable(e.Dialect(), m, func(table string) bool {
			return !created[table] && slices.ContainsFunc(ms, func(o *structmap.Model) bool { return o.Table == table })
		})
		if err != nil {
			return err
		}
		stmts = append(stmts, stmt)
		stmts = append(stmts, createIndexes(e.Dialect(), m)...)
		keys = append(keys, later...)
	}
	return runDDL(ctx, e, append(stmts, keys...))
}

// DropAll drops the tables of models that exist, children before parents.
func DropAll(ctx context.Context, e *asyncengine.Engine, models ...any) error {
	ms, err := ordered(models)
	if err != nil {
		return err
	}
	stmts := make([]string, 0, len(ms))
	for i := len(ms) - 1; i >= 0; i-- {
		stmts = append(stmts, dropTable(e.Dialect(), ms[i]))
	}
	return runDDL(ctx, e, stmts)
}

func runDDL(ctx context.Context, e *asyncengine.Engine, stmts []string) error {
	return e.Begin(ctx, func(c *asyncengine.Conn) error {
		for _, s := range stmts {
			if _, err := c.Exec(ctx, s); err != nil {
				return fmt.Errorf("%w\n  in: %s", err, s)
			}
		}
		return nil
	})
}

// ordered maps the models and sorts them parents first.
func ordered(models []any) ([]*structmap.Model, error) {
	var ms []*structmap.Model
	for _, x := range models {
		// a model the session would refuse is refused before its table exists
		m, err := usableModel(reflect.TypeOf(x))
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	var ins []*instance
	for _, m := range ms {
		ins = append(ins, &instance{model: m})
	}
	levels := levelsOf(ins)
	sort.SliceStable(ms, func(i, j int) bool { return levels[ms[i].Table] < levels[ms[j].Table] })
	return ms, nil
}
