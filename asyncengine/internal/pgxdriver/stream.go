package pgxdriver

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A stream is a pipeline whose statements leave as they are handed over: the server runs the
// first ones while the caller works out the next. It speaks the extended protocol itself, with
// statements the connection prepared under names of its own and keeps described (a batch
// describes each statement before sending any of it, and so cannot take statements that are
// not written yet).

// describedCap bounds the statements a connection keeps prepared for streams; past it, they are
// all deallocated at the start of the next stream and prepared again as they come.
const describedCap = 256

// streamDescriptions is a connection's side of it: the statements prepared for streams, by SQL.
type streamDescriptions struct {
	bySQL map[string]*pgconn.StatementDescription
	next  int      // the number in the next statement's name
	stale []string // names to deallocate at the start of the next stream
}

// forget drops every description: they are deallocated when the next stream starts.
func (d *streamDescriptions) forget() {
	for _, sd := range d.bySQL {
		d.stale = append(d.stale, sd.Name)
	}
	d.bySQL = nil
}

// PipelineStream runs stmts, then the statements more returns, each batch sent as soon as it is
// returned, until more returns none; each is handed every result as it is read. A connection
// that does not prepare its statements (statement_cache other than its default) collects every
// statement first and runs them as PipelineEach does.
func (c *Conn) PipelineStream(ctx context.Context, stmts []driver.Statement, more func() []driver.Statement, each func(int, *driver.Result)) ([]*driver.Result, error) {
	if !c.streams {
		for next := more(); len(next) > 0; next = more() {
			stmts = append(stmts[:len(stmts):len(stmts)], next...)
		}
		return c.PipelineEach(ctx, stmts, each)
	}
	s := &stream{c: c, m: c.pc.TypeMap(), each: each, mark: c.written()}
	if c.cc != nil {
		done := c.cc.countOwn()
		defer func() { done(s.waits) }()
	}
	s.pl = c.pc.PgConn().StartPipeline(ctx)
	if len(c.described.bySQL) >= describedCap {
		c.described.forget()
	}
	stale := c.described.stale
	for _, name := range stale {
		s.pl.SendDeallocate(name)
		s.deallocating++
	}
	c.described.stale = nil
	defer func() {
		if s.err != nil {
			// deallocated or not, they are deallocated again (a name that is gone is no error)
			c.described.stale = append(c.described.stale, stale...)
		}
	}()
	s.send(stmts)
	for s.err == nil {
		next := more()
		if len(next) == 0 {
			break
		}
		s.send(next)
	}
	return s.finish()
}

// stream is one PipelineStream.
type stream struct {
	c            *Conn
	m            *pgtype.Map
	pl           *pgconn.Pipeline
	eqb          pgx.ExtendedQueryBuilder
	each         func(int, *driver.Result)
	mark         int64
	deallocating int   // Deallocate results to read before the first statement's
	waits        int64 // the times it waited for the server: its round trips

	sent []string         // the statements sent, by SQL
	rs   []*driver.Result // the results read, in order
	// err stops the stream: the failure of statement at (sent or not), or of the connection
	err error
	at  int
	// notRun: nothing of the stream ran (the failure came before its first statement was sent)
	notRun bool
}

// fail records the stream's first failure, at statement i.
func (s *stream) fail(i int, err error) {
	if s.err == nil || i < s.at {
		s.err, s.at = err, i
	}
}

// send sends stmts, describing first what the connection has not prepared yet: all of it at
// once before the first statement is sent, as a batch does; after that, each statement at its
// place, so that one that cannot be prepared fails where it stands, after the statements before
// it ran.
func (s *stream) send(stmts []driver.Statement) {
	if len(s.sent) == 0 && !s.describe(stmts) {
		return
	}
	for k, st := range stmts {
		sql := st.SQL
		if strings.TrimSpace(sql) == "" {
			sql = emptyResult
		}
		sd := s.c.described.bySQL[sql]
		if sd == nil {
			if !s.describe(stmts[k : k+1]) {
				return
			}
			sd = s.c.described.bySQL[sql]
		}
		i := len(s.sent)
		if err := s.eqb.Build(s.m, sd, st.Args); err != nil {
			s.fail(i, &driver.EncodeError{Err: err, Fix: outOfRangeFix(err)})
			s.notRun = i == 0
			return
		}
		// the result formats are kept with the request until its result is read; the builder
		// reuses its own for the next statement
		formats := append([]int16(nil), s.eqb.ResultFormats...)
		s.pl.SendQueryStatement(sd, s.eqb.ParamValues, s.eqb.ParamFormats, formats)
		s.sent = append(s.sent, sql)
	}
	if err := s.pl.Flush(); err != nil {
		s.fail(len(s.rs), err)
	}
}

// describe prepares the statements of stmts the connection has not prepared, reporting whether
// the stream goes on. It reads the results of the statements sent before (handing them on), as
// they come before the descriptions.
func (s *stream) describe(stmts []driver.Statement) bool {
	d := &s.c.described
	var fresh []*pgconn.StatementDescription
	var first map[string]int // a fresh statement's first position, for its failure
	for k, st := range stmts {
		sql := st.SQL
		if strings.TrimSpace(sql) == "" {
			sql = emptyResult
		}
		if _, ok := d.bySQL[sql]; ok {
			continue
		}
		if _, ok := first[sql]; ok {
			continue
		}
		if first == nil {
			first = map[string]int{}
		}
		first[sql] = len(s.sent) + k
		sd := &pgconn.StatementDescription{Name: "gosqla_stream_" + strconv.Itoa(d.next), SQL: sql}
		d.next++
		fresh = append(fresh, sd)
		s.pl.SendPrepare(sd.Name, sql, nil)
	}
	if len(fresh) == 0 {
		return true
	}
	s.pl.SendFlushRequest()
	if err := s.pl.Flush(); err != nil {
		s.fail(len(s.rs), err)
		return false
	}
	s.waits++
	if !s.readSent() {
		return false // a statement failed: the server skips the prepares too
	}
	if d.bySQL == nil {
		d.bySQL = map[string]*pgconn.StatementDescription{}
	}
	for _, sd := range fresh {
		res, err := s.pl.GetResults()
		if err == nil {
			described, ok := res.(*pgconn.StatementDescription)
			if !ok {
				err = errors.New("gosqla: a stream's prepare was answered out of order")
			} else {
				sd.ParamOIDs, sd.Fields = described.ParamOIDs, described.Fields
				d.bySQL[sd.SQL] = sd
				continue
			}
		}
		// a statement that cannot be prepared (a syntax error): nothing after it runs, and
		// before the first statement nothing ran at all
		s.fail(first[sd.SQL], err)
		s.notRun = len(s.sent) == 0
		return false
	}
	return true
}

// readSent reads the results of every statement sent and not read yet, reporting whether all of
// them succeeded.
func (s *stream) readSent() bool {
	for s.deallocating > 0 {
		s.deallocating--
		if _, err := s.pl.GetResults(); err != nil {
			s.fail(0, err)
			return false
		}
	}
	for len(s.rs) < len(s.sent) {
		i := len(s.rs)
		res, err := s.pl.GetResults()
		if err != nil {
			s.fail(i, err)
			return false
		}
		rr, ok := res.(*pgconn.ResultReader)
		if !ok {
			s.fail(i, errors.New("gosqla: a stream's statement was answered out of order"))
			return false
		}
		r, err := readReader(s.m, rr)
		if err != nil {
			s.fail(i, err)
			return false
		}
		s.rs = append(s.rs, r)
		if s.each != nil {
			s.each(i, r)
		}
	}
	return true
}

// finish ends the stream with a sync, reads the results not read yet and reports the first
// failure, in statement order.
func (s *stream) finish() ([]*driver.Result, error) {
	c := s.c
	if err := s.pl.Sync(); err != nil {
		s.fail(len(s.rs), err)
	} else {
		s.waits++
		s.readSent()
	}
	// reads what the server sends up to the sync (the statements a failure skipped send nothing)
	closeErr := s.pl.Close()
	if s.err == nil && closeErr != nil {
		s.fail(len(s.rs), closeErr)
	}
	if s.err == nil {
		return s.rs, nil
	}
	var pgErr *pgconn.PgError
	if errors.As(s.err, &pgErr) && (pgErr.Code == "26000" || pgErr.Code == "0A000") {
		// a prepared statement gone (DEALLOCATE ALL, DISCARD ALL) or made stale by a change of
		// its table: the stream's statements are prepared afresh
		c.described.forget()
	}
	err := s.err
	var enc *driver.EncodeError
	if !errors.As(err, &enc) {
		err = c.settled(s.mark, err)
	}
	notRun := s.notRun && !c.pc.IsClosed() && c.pc.PgConn().TxStatus() != 'E'
	return s.rs, &driver.PipelineError{Index: s.at, Err: err, NotExecuted: notRun}
}

// readReader keeps a result's cells as they came off the wire, as readRows does.
func readReader(m *pgtype.Map, rr *pgconn.ResultReader) (*driver.Result, error) {
	res, cells := newResult(m, rr.FieldDescriptions())
	if cells != nil {
		for rr.NextRow() {
			cells.Append(rr.Values())
		}
	}
	tag, err := rr.Close()
	if err != nil {
		return nil, err
	}
	res.RowsAffected = tag.RowsAffected()
	return res, nil
}
