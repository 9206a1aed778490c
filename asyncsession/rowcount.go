package asyncsession

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"weak"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
	"github.com/jackc/pgx/v5/pgconn"
)

// checksCount reports a dialect whose INSERTs check their own row count (checked); elsewhere the
// COMMIT of a flush that inserts waits until the rows are counted (readsBack).
func checksCount(d *asyncengine.Dialect) bool { return d.Name() == "postgresql" }

// checked wraps an INSERT … RETURNING of g's rows so that it fails, and the transaction with it,
// when it writes another number of rows than it was sent (a trigger that skipped one): a COMMIT
// later in the same pipeline then commits nothing. A batch into a table that cannot skip rows
// is not wrapped (its guard fails instead if the table starts to: unnest.go). A batch that publishes leaves its rows' keys (see above). n is the
// placeholder of the number of rows sent.
func checked(d *asyncengine.Dialect, g *insertGroup, insert, n string) string {
	ok := "true"
	if g.publisher > 0 {
		ok = "set_config('" + keyedSetting(g.publisher) + "', array_agg(p." + d.Quote(g.m.PK[0].Column) + ")::text, true) IS NOT NULL"
	}
	return "WITH p AS (" + insert + ") SELECT p.* FROM p WHERE (SELECT " + countIs("p", n+"::bigint", ok, countMarker, "") + ")"
}

// countIs is the check that the statement of the WITH query rel wrote (or matched) n rows: ok
// when it did, otherwise a failure whose text is marker followed by "<count> of <n>", and by
// detail's text when detail (an expression) is given; the count in the text keeps the planner
// from evaluating the failure before the condition.
func countIs(rel, n, ok, marker, detail string) string {
	if detail != "" {
		detail = " || " + detail
	}
	return "CASE WHEN count(*) = " + n + " THEN " + ok + " ELSE ('" + marker + "' || count(*) || ' of ' || " + n + detail + ")::boolean END FROM " + rel
}

// markerCount reads the count a failure of countIs with marker reports in the server's error
// text.
func markerCount(text, marker string) (int, bool) {
	_, rest, ok := strings.Cut(text, `"`+marker)
	if !ok {
		return 0, false
	}
	count, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(count)
	return n, err == nil
}

// matched wraps an UPDATE by the objects' keys so that it fails, and the transaction with it,
// unless it matched n rows (an expression), one per object: an UPDATE that matched none (the row
// deleted, or its key changed, by another transaction) would otherwise succeed without writing,
// and a COMMIT later in the same pipeline would commit the rest as if it had. The failure's text
// starts with matchedMarker.
func matched(update, n string) string {
	return "WITH u AS (" + update + " RETURNING 1) SELECT " + countIs("u", n, "true", matchedMarker, "")
}

// matchedNaming is matched for an UPDATE of a batch by keys, whose failure names, after the
// count, up to missingShown keys of the batch that matched no row: keys are the table's key
// columns (as r, the updated table, names them), sent the batch's key values, as the FROM list
// from names them. The list is built only when the count is wrong.
func matchedNaming(update, n string, keys, sent []string, from string) string {
	key := "m.k1"
	if len(keys) > 1 {
		key = "ROW(m.*)"
	}
	cols := make([]string, len(keys))
	for i := range keys {
		cols[i] = "k" + strconv.Itoa(i+1)
	}
	missing := "coalesce((SELECT string_agg(" + key + "::text, ', ') FROM (SELECT " + strings.Join(sent, ", ") + " FROM " + from +
		" EXCEPT SELECT " + strings.Join(cols, ", ") + " FROM u LIMIT " + strconv.Itoa(missingShown) + ") AS m(" + strings.Join(cols, ", ") + ")), '')"
	return "WITH u(" + strings.Join(cols, ", ") + ") AS (" + update + " RETURNING " + strings.Join(keys, ", ") + ") SELECT " +
		countIs("u", n, "true", matchedMarker, "'"+missingMarker+"' || "+missing)
}

// missingMarker follows the count in the failure of matchedNaming, before the keys: "gosqla:
// matched 1 of 2; no row for key 1".
const (
	missingMarker = "; no row for key "
	missingShown  = 10
)

// missingKeys reads the keys a failure of matchedNaming names in the server's error text ("":
// none).
func missingKeys(text string) string {
	_, rest, ok := strings.Cut(text, missingMarker)
	if !ok {
		return ""
	}
	// the text ends where the server quoted it: a key may hold a quote
	if end := strings.LastIndexByte(rest, '"'); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// matchedMarker starts the text of the error an UPDATE that did not match its rows raises:
// "gosqla: matched 0 of 1".
const matchedMarker = "gosqla: matched "

// updatedRows are the objects whose UPDATE is statement stmt of a flush.
type updatedRows struct {
	stmt int
	ins  []*instance
}

// staleError is the failure of the UPDATE at statement stmt, which matched n rows (err: the
// server's, nil if none).
func (fp *flushPlan) staleError(stmt, n int, err error) error {
	for _, u := range fp.updated {
		if u.stmt != stmt {
			continue
		}
		what := fmt.Sprintf("the UPDATE of %s with key %v matched %d rows, not 1", fp.d.Quote(u.ins[0].model.Table), u.ins[0].pk, n)
		if len(u.ins) > 1 {
			what = fmt.Sprintf("the UPDATE of %d rows of %s by their keys matched %d", len(u.ins), fp.d.Quote(u.ins[0].model.Table), n)
			if keys := missingKeys(serverText(err)); keys != "" {
				what += " (no row for key " + keys + ")"
			}
		}
		return fmt.Errorf("%w: %s: another transaction deleted a row or changed its key since its object was loaded (or a trigger skipped the update); nothing of the transaction is committed: roll the session back, then Expunge the objects whose row is gone (Get of their key returns nil, and Refresh fails) and Refresh the others to read their rows again (their changes stay ones to write)%s", ErrStaleObject, what, serverText(err))
	}
	return err
}

// countMarker starts the text of the error a checked INSERT raises: "gosqla: wrote 2 of 3".
const countMarker = "gosqla: wrote "

// countError is the failure of a batch INSERT whose result has another number of rows than it
// was sent (nil: none).
func (fp *flushPlan) countError(g *insertGroup, r *asyncengine.Result) error {
	if r.Len() == len(g.ins) {
		return nil
	}
	return fp.wroteError(g, r.Len(), nil)
}

// wroteError is the failure of g's INSERT that wrote n rows (err: the server's, nil if none).
// The server's error is the check's own signal (an invalid boolean), not a cause a caller should
// match: only its text is kept.
func (fp *flushPlan) wroteError(g *insertGroup, n int, err error) error {
	return fmt.Errorf("%w: INSERT into %s wrote %d of %d rows: a BEFORE INSERT trigger or a rule skipped some, and the session cannot tell which object lost its row, so nothing of the transaction is committed; roll the session back, then drop or change the trigger, or write these rows outside the session (Engine.Exec)%s", ErrRowsSkipped, g.m.Table, n, len(g.ins), serverText(err))
}

// changedError is the failure of a batch into m's table whose guard found it changed (unnest.go). The
// engine reads every table again: the migration may have changed others, which would fail the
// next commits one by one.
func (fp *flushPlan) changedError(m *structmap.Model, err error) error {
	forgetTables(weak.Make(fp.e))
	return fmt.Errorf("%w: the column types or the triggers of %s changed since the engine read them (ALTER TABLE, CREATE TRIGGER), or cannot be checked in a transaction above READ COMMITTED that the session was not told of (SET TRANSACTION: give the session Isolation instead); nothing of the batch was written and nothing of the transaction is committed: roll the session back and add the objects again (Rollback expunges them; changes to loaded objects stay ones to write); the next flush reads the tables again%s", ErrTableChanged, fp.d.Quote(m.Table), serverText(err))
}

// primaryKeyTaken recognizes a violation of the primary key (its columns) of table: PostgreSQL's
// 23505 whose detail names the columns, SQLite's primary-key code or its unique code naming them.
func primaryKeyTaken(err error, table string, key []*structmap.Field) bool {
	text, primary, ok := uniqueViolation(err)
	if !ok {
		return false
	}
	if pg := (*pgconn.PgError)(nil); errors.As(err, &pg) {
		// "Key (id)=(1) already exists.", a column quoted where it must be: Key ("row", num)=…
		rest, isKey := strings.CutPrefix(text, "Key (")
		names, _, found := strings.Cut(rest, ")=")
		if !isKey || !found {
			return false
		}
		named := strings.Split(names, ", ")
		if len(named) != len(key) {
			return false
		}
		for _, f := range key {
			if !slices.ContainsFunc(named, func(n string) bool { return strings.Trim(n, `"`) == f.Column }) {
				return false
			}
		}
		return true
	}
	if primary {
		return true
	}
	for _, f := range key {
		if !strings.Contains(text, table+"."+f.Column) {
			return false
		}
	}
	return true
}

// uniqueViolation reports a violation of a unique or primary key, with the text that names its
// columns: PostgreSQL's 23505 and its detail ("Key (id)=(1) already exists."), SQLite's unique
// code and its message, or SQLite's primary-key code (primary).
func uniqueViolation(err error) (text string, primary, ok bool) {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Detail, false, pg.Code == "23505"
	}
	var lite interface {
		error
		Code() int
	}
	if !errors.As(err, &lite) {
		return "", false, false
	}
	return lite.Error(), lite.Code() == 1555, lite.Code() == 1555 || lite.Code() == 2067
}

// insertAt is the INSERT batch of the plan at statement i, or nil.
func (fp *flushPlan) insertAt(i int) *insertGroup {
	for _, g := range fp.insertGroups {
		if g.stmt == i {
			return g
		}
	}
	return nil
}

// keyTakenError is the violation of the primary key by INSERT i of the plan, told how it usually
// comes about: objects added with their key set (one the server generates, or one the
// application always sets) are rows loaded or saved before (in another session, or expunged),
// and Add inserts. The server's error stays the cause, its text first. Any other error is
// returned as it is.
func (fp *flushPlan) keyTakenError(i int, err error) error {
	g := fp.insertAt(i)
	if g == nil || !primaryKeyTaken(err, g.m.Table, g.m.PK) {
		return err
	}
	switch {
	case len(g.m.PK) == 1 && g.m.PK[0].Default && slices.Contains(g.cols, g.m.PK[0]):
		return fmt.Errorf("%w (gosqla: the INSERT into %s carried %d %s whose %s the server generates but was already set: an object loaded or saved before, by another session or before an Expunge, is inserted again by Add; to save changes to its row, Merge it into this session or load it here)",
			err, g.m.Table, len(g.ins), g.m.Type, g.m.PK[0].Column)
	case !slices.ContainsFunc(g.m.PK, func(f *structmap.Field) bool { return f.Default }):
		return fmt.Errorf("%w (gosqla: the INSERT into %s carried %d %s, one of whose keys already has a row: Add inserts, so an object loaded or saved before, by another session or before an Expunge, is inserted again; to save changes to its row, Merge it into this session or load it here, and to insert or update by key, Upsert it)",
			err, g.m.Table, len(g.ins), g.m.Type)
	}
	return err
}

// freedLaterError names the likely cause of a unique violation of an INSERT of the plan into a
// table it also deletes from: its DELETEs run after its INSERTs (a one-to-one's old child under
// delete-orphan holds the key the new one takes).
func (fp *flushPlan) freedLaterError(i int, err error) error {
	g := fp.insertAt(i)
	if _, _, unique := uniqueViolation(err); !unique || g == nil {
		return err
	}
	for _, in := range fp.deleted {
		if in.model.Table == g.m.Table {
			return fmt.Errorf("%w (gosqla: this flush also deletes rows of %s, after its INSERTs: a unique value a deleted row holds — a one-to-one's old child under delete-orphan — is free for the next flush only; delete or clear it, Flush, then add the new row)", err, g.m.Table)
		}
	}
	return err
}

// serverText is the text of a check's server error, to end a message with.
func serverText(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// explain names the cause of a checked or guarded INSERT of the plan that failed because it
// did not write every row it was sent or found its table changed; i is the failing statement.
func (fp *flushPlan) explain(i int, err error) error {
	var server interface {
		error
		SQLState() string
	}
	if hinted := fp.keyTakenError(i, err); hinted != err {
		return hinted
	}
	if hinted := fp.freedLaterError(i, err); hinted != err {
		return hinted
	}
	if !errors.As(err, &server) || server.SQLState() != "22P02" {
		return err
	}
	text := server.Error()
	if n, ok := markerCount(text, matchedMarker); ok {
		return fp.staleError(i, n, err)
	}
	changed := strings.Contains(text, `"`+changedMarker)
	if !changed && !strings.Contains(text, `"`+countMarker) {
		return err
	}
	for _, u := range fp.updated {
		if u.stmt == i && changed {
			return fp.changedError(u.ins[0].model, err)
		}
	}
	g := fp.insertAt(i)
	if g == nil {
		return err
	}
	if changed {
		return fp.changedError(g.m, err)
	}
	n, ok := markerCount(text, countMarker)
	if !ok {
		return err
	}
	return fp.wroteError(g, n, err)
}
