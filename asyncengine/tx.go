package asyncengine

import (
	"context"
	"fmt"
)

// Tx is a transaction, or with BeginNested a savepoint inside one. Like Conn it is not
// goroutine-safe.
type Tx struct {
	c         *Conn
	parent    *Tx
	savepoint string // "" for the outermost transaction
	done      bool
	traceCtx  context.Context // the TxTracer's context, until the trace ends
}

// Begin starts a transaction. A transaction is already open: use BeginNested for a savepoint.
func (c *Conn) Begin(ctx context.Context) (*Tx, error) {
	tx := &Tx{c: c}
	if err := c.begin(ctx, tx); err != nil {
		return nil, err
	}
	return tx, nil
}

// begin opens the transaction tx.
func (c *Conn) begin(ctx context.Context, tx *Tx) error {
	if c.tx != nil {
		return fmt.Errorf("gosqla: a transaction is already open on this connection; use BeginNested for a savepoint")
	}
	tctx := c.traceTxStart(ctx, "")
	c.beginning = tctx
	err := c.control(ctx, "BEGIN")
	c.beginning = nil
	if err != nil {
		c.traceTxFailed(tctx, "", err)
		return err
	}
	tx.traceCtx = tctx
	c.tx = tx
	return nil
}

// BeginNested starts a savepoint inside the open transaction, beginning one first if none is open.
func (c *Conn) BeginNested(ctx context.Context) (*Tx, error) {
	if c.tx == nil {
		if _, err := c.Begin(ctx); err != nil {
			return nil, err
		}
	}
	depth := 1
	for t := c.tx; t.parent != nil; t = t.parent {
		depth++
	}
	name := fmt.Sprintf("gosqla_sp_%d", depth)
	tctx := c.traceTxStart(ctx, name)
	c.beginning = tctx
	err := c.control(ctx, "SAVEPOINT "+name)
	c.beginning = nil
	if err != nil {
		c.traceTxFailed(tctx, name, err)
		return nil, err
	}
	c.tx = &Tx{c: c, parent: c.tx, savepoint: name, traceCtx: tctx}
	return c.tx, nil
}

// TxTraceContext is the context the TxTracer returned for the innermost transaction or savepoint
// open on c (the one being opened, while its BEGIN or SAVEPOINT runs), nil when none is traced:
// a tracer makes the statements it sees children of the transaction's span through it.
func (c *Conn) TxTraceContext() context.Context {
	if c.beginning != nil {
		return c.beginning
	}
	for t := c.tx; t != nil; t = t.parent {
		if t.traceCtx != nil {
			return t.traceCtx
		}
	}
	return nil
}

// Conn returns the transaction's connection.
func (t *Tx) Conn() *Conn { return t.c }

func (t *Tx) check() error {
	switch {
	case t.done:
		return ErrTxDone
	case t.c.tx != t:
		return fmt.Errorf("gosqla: a savepoint inside this transaction is still open; commit or roll it back first")
	}
	return nil
}

// Exec runs a statement inside the transaction.
func (t *Tx) Exec(ctx context.Context, sql string, args ...any) (ExecResult, error) {
	if t.done {
		return ExecResult{}, ErrTxDone
	}
	return t.c.Exec(ctx, sql, args...)
}

// Query runs a query inside the transaction.
func (t *Tx) Query(ctx context.Context, sql string, args ...any) (*Result, error) {
	if t.done {
		return nil, ErrTxDone
	}
	return t.c.Query(ctx, sql, args...)
}

// Commit commits the transaction, or releases the savepoint. A transaction the server aborted
// (a statement failed) is rolled back and ErrPendingRollback returned. A connection lost after
// COMMIT was sent is a *CommitUnknownError (ErrCommitUnknown): the transaction may have committed.
func (t *Tx) Commit(ctx context.Context) error {
	if err := t.check(); err != nil {
		return err
	}
	if t.c.lost {
		return ErrPendingRollback
	}
	if failure := t.c.aborted; failure != nil && t.savepoint != "" {
		return fmt.Errorf("%w: a statement in the savepoint failed (%w); roll it back", ErrPendingRollback, failure)
	}
	if t.savepoint != "" {
		if err := t.c.control(ctx, "RELEASE SAVEPOINT "+t.savepoint); err != nil {
			return err
		}
		t.traceTxEnd(true, nil)
		t.end()
		return nil
	}
	// the failure the Conn saw, or the server's word for one it did not (a COMMIT of an aborted
	// transaction would answer ROLLBACK with no error)
	if failure := t.c.aborted; failure != nil || t.serverAborted() {
		t.c.aborted = nil
		err := t.c.control(ctx, "ROLLBACK")
		if err == nil {
			err = fmt.Errorf("%w: a statement in it failed, so it was rolled back", ErrPendingRollback)
			if failure != nil {
				err = fmt.Errorf("%w: a statement in it failed (%w), so it was rolled back", ErrPendingRollback, failure)
			}
		}
		t.traceTxEnd(false, err)
		t.end()
		return err
	}
	err := t.c.control(ctx, "COMMIT")
	if err != nil {
		// a connection lost once COMMIT was sent leaves the outcome unknown: say so
		err = t.c.e.ClassifyCommitError(err)
	}
	t.traceTxEnd(true, err)
	t.end()
	return err
}

// serverAborted reports a transaction the server aborted, as the driver tells it.
func (t *Tx) serverAborted() bool {
	f, ok := t.c.driverConn().(interface{ TxFailed() bool })
	return ok && f.TxFailed()
}

// Rollback rolls the transaction back, or rolls back to the savepoint and releases it. After a
// lost connection it only clears the failed state (the server already discarded the work).
func (t *Tx) Rollback(ctx context.Context) error {
	if err := t.check(); err != nil {
		return err
	}
	c := t.c
	if c.lost {
		c.lost, c.aborted = false, nil
		for x := t; x != nil; x = x.parent {
			x.traceTxEnd(false, nil)
			x.done = true
		}
		c.tx = nil
		return nil
	}
	c.aborted = nil // the rollback undoes the failed statement
	var err error
	if t.savepoint != "" {
		err = c.rollbackTo(ctx, t.savepoint)
	} else {
		err = c.control(ctx, "ROLLBACK")
	}
	t.traceTxEnd(false, err)
	t.end()
	return err
}

// rollbackTo undoes the work since the savepoint and removes it.
func (c *Conn) rollbackTo(ctx context.Context, sp string) error {
	if err := c.control(ctx, "ROLLBACK TO SAVEPOINT "+sp); err != nil {
		return err
	}
	err := c.control(ctx, "RELEASE SAVEPOINT "+sp)
	return err
}

func (t *Tx) end() {
	t.done = true
	t.c.tx = t.parent
	if t.parent == nil {
		t.c.aborted = nil
	}
}
