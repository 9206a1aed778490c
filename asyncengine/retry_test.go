package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

var quickRetry = asyncengine.RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// Each class of failure meets the policy: retried when nothing was committed, returned when the
// error is the application's or the COMMIT's outcome is unknown.
func TestBeginRetryClasses(t *testing.T) {
	t.Parallel()
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url, "")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE done (id text)")
	require.NoError(t, err)

	failFirst := func(name, sql string) func(*asyncengine.Conn) error {
		attempt := 0
		return func(c *asyncengine.Conn) error {
			attempt++
			if attempt == 1 {
				if _, err := c.Exec(ctx, sql); err != nil {
					return err
				}
			}
			_, err := c.Exec(ctx, "INSERT INTO done VALUES ($1)", name)
			return err
		}
	}
	count := func(name string) int64 {
		r, err := e.Query(ctx, "SELECT count(*) FROM done WHERE id = $1", name)
		require.NoError(t, err)
		n, err := r.Scalar()
		require.NoError(t, err)
		return n.(int64)
	}
	for _, tc := range []struct{ name, sql string }{
		{"serialization", `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`},
		{"deadlock", `DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$`},
		{"disconnect", `SELECT pg_terminate_backend(pg_backend_pid())`},
	} {
		var retried []error
		p := quickRetry
		p.OnRetry = func(n int, err error) { retried = append(retried, err) }
		require.NoError(t, e.BeginRetry(ctx, p, failFirst(tc.name, tc.sql)), tc.name)
		require.Len(t, retried, 1, tc.name)
		require.EqualValues(t, 1, count(tc.name), tc.name)
	}

	// a serialization failure the function swallowed still fails the attempt at Commit, with the
	// failure as its cause, and is retried
	var swallowed []error
	p := quickRetry
	p.OnRetry = func(n int, err error) { swallowed = append(swallowed, err) }
	attempt := 0
	require.NoError(t, e.BeginRetry(ctx, p, func(c *asyncengine.Conn) error {
		attempt++
		if attempt == 1 {
			_, _ = c.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
			return nil
		}
		_, err := c.Exec(ctx, "INSERT INTO done VALUES ('swallowed')")
		return err
	}))
	require.Len(t, swallowed, 1)
	require.ErrorIs(t, swallowed[0], asyncengine.ErrPendingRollback)
	require.EqualValues(t, 1, count("swallowed"))

	// the application's own error, and a server error that is not transient: one attempt
	attempts := 0
	err = e.BeginRetry(ctx, quickRetry, func(c *asyncengine.Conn) error {
		attempts++
		_, err := c.Exec(ctx, "SELECT 1/0")
		return err
	})
	require.Error(t, err)
	require.Equal(t, 1, attempts)

	// always conflicting: the attempts run out, and the last error stays reachable
	attempts = 0
	err = e.BeginRetry(ctx, quickRetry, func(c *asyncengine.Conn) error {
		attempts++
		_, err := c.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$`)
		return err
	})
	var re *asyncengine.RetryError
	require.ErrorAs(t, err, &re)
	require.Equal(t, 5, re.Attempts)
	require.Equal(t, 5, attempts)
	var coded interface{ SQLState() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "40001", coded.SQLState())
}

// A connection lost while COMMIT runs (a deferred trigger ends its own backend) is reported as
// unknown and not retried.
func TestBeginRetryCommitUnknown(t *testing.T) {
	t.Parallel()
	url := enginetest.NewDatabase(t)
	e := newEngine(t, url, "")
	ctx := enginetest.Context(t)
	for _, sql := range []string{
		"CREATE TABLE w (id int)",
		`CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; END $$`,
		"CREATE CONSTRAINT TRIGGER die AFTER INSERT ON w DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION die()",
	} {
		_, err := e.Exec(ctx, sql)
		require.NoError(t, err)
	}
	attempts := 0
	err := e.BeginRetry(ctx, quickRetry, func(c *asyncengine.Conn) error {
		attempts++
		_, err := c.Exec(ctx, "INSERT INTO w VALUES (1)")
		return err
	})
	require.ErrorIs(t, err, asyncengine.ErrCommitUnknown)
	var cu *asyncengine.CommitUnknownError
	require.ErrorAs(t, err, &cu)
	require.Equal(t, 1, attempts)
	require.Contains(t, err.Error(), "may or may not have committed")
}

// A COMMIT that committed on the server but whose answer was cut off is reported as unknown, not
// retried: the primary waits for a stopped synchronous standby after committing locally, and its
// backend is terminated while it waits, so the client reads the end of the connection where the
// answer should be. The driver calls such a loss "conn closed"; had it been retried, the second
// attempt would have written the row again.
func TestBeginRetryCommitCutOff(t *testing.T) {
	t.Parallel()
	r := enginetest.NewReplication(t, enginetest.ReplicationOptions{Standbys: 1, Synchronous: true})
	url, _ := r.URLs(r.NewDatabase(t))
	e := newEngine(t, url, "")
	ctx := enginetest.Context(t)
	_, err := e.Exec(ctx, "CREATE TABLE w (id int PRIMARY KEY)")
	require.NoError(t, err)
	r.Standbys[0].Stop(t)
	t.Cleanup(func() { r.Standbys[0].Start(t) }) // so that dropping the database can commit

	// the terminator ends the backend once it waits for the standby after committing locally
	watch := newEngine(t, url, "")
	cutOff := func(commit func() error) error {
		done := make(chan error, 1)
		go func() {
			for {
				res, err := watch.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")
				if err != nil || res.RowsAffected() > 0 {
					done <- err
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		err := commit()
		require.NoError(t, <-done)
		return err
	}
	attempts := 0
	err = cutOff(func() error {
		return e.BeginRetry(ctx, quickRetry, func(c *asyncengine.Conn) error {
			attempts++
			_, err := c.Exec(ctx, "INSERT INTO w VALUES (1)")
			return err
		})
	})
	require.ErrorIs(t, err, asyncengine.ErrCommitUnknown)
	require.Equal(t, 1, attempts)
	require.False(t, pgconn.SafeToRetry(err), "the COMMIT reached the server")

	// a plain Begin says the same: its caller must not take the error for "not committed"
	err = cutOff(func() error {
		return e.Begin(ctx, func(c *asyncengine.Conn) error {
			_, err := c.Exec(ctx, "INSERT INTO w VALUES (2)")
			return err
		})
	})
	require.ErrorIs(t, err, asyncengine.ErrCommitUnknown)
	var de *asyncengine.DisconnectError
	require.ErrorAs(t, err, &de, "and the lost connection stays reachable")

	// both did commit: a read on the primary sees the rows without waiting for the standby
	res, err := watch.Query(ctx, "SELECT count(*) FROM w")
	require.NoError(t, err)
	var n int64
	require.NoError(t, res.One(&n))
	require.EqualValues(t, 2, n)
}

// A bank under SERIALIZABLE, 16 clients making 2 000 transfers between 10 accounts while
// backends are killed and the server restarts: the money is conserved, every transfer reported
// done is in the ledger exactly once, every transfer reported failed is absent.
func TestBankTransfersUnderFaults(t *testing.T) {
	t.Parallel()
	cl := enginetest.NewCluster(t)
	url := cl.NewDatabase(t)
	e := newEngine(t, url, "pool_size=16&max_overflow=0&pool_timeout=20")
	// 2 000 transfers under faults take a minute or more on a loaded 2-core machine with -race:
	// the test's own deadline must not be what fails them
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const accounts, initial, clients, transfers = 10, 1000, 16, 2000
	for _, sql := range []string{
		"CREATE TABLE account (id int PRIMARY KEY, balance bigint NOT NULL)",
		"CREATE TABLE ledger (transfer text NOT NULL, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)", // no unique key: a duplicate would show
		fmt.Sprintf("INSERT INTO account SELECT g, %d FROM generate_series(1, %d) g", initial, accounts),
	} {
		_, err := e.Exec(ctx, sql)
		require.NoError(t, err)
	}

	var serialization, lost atomic.Int64
	policy := asyncengine.RetryPolicy{MaxAttempts: 100, BaseDelay: time.Millisecond, MaxDelay: 100 * time.Millisecond,
		OnRetry: func(_ int, err error) {
			var coded interface{ SQLState() string }
			if errors.As(err, &coded) && (coded.SQLState() == "40001" || coded.SQLState() == "40P01") {
				serialization.Add(1)
			} else {
				lost.Add(1)
			}
		}}
	errInsufficient := errors.New("insufficient funds")
	type outcome struct {
		id  string
		err error
	}
	results := make(chan outcome, transfers)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= transfers; n = next.Add(1) {
				id := fmt.Sprintf("t%d", n)
				src, dst := rand.IntN(accounts)+1, rand.IntN(accounts)+1
				for dst == src {
					dst = rand.IntN(accounts) + 1
				}
				amount := int64(rand.IntN(100) + 1)
				err := e.BeginRetry(ctx, policy, func(c *asyncengine.Conn) error {
					if _, err := c.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"); err != nil {
						return err
					}
					var balance int64
					r, err := c.Query(ctx, "SELECT balance FROM account WHERE id = $1", src)
					if err == nil {
						err = r.One(&balance)
					}
					if err != nil {
						return err
					}
					if balance < amount {
						return errInsufficient
					}
					// read-modify-write, so that concurrent transfers conflict under SERIALIZABLE
					if _, err := c.Exec(ctx, "UPDATE account SET balance = $2 WHERE id = $1", src, balance-amount); err != nil {
						return err
					}
					if _, err := c.Exec(ctx, "UPDATE account SET balance = balance + $2 WHERE id = $1", dst, amount); err != nil {
						return err
					}
					_, err = c.Exec(ctx, "INSERT INTO ledger VALUES ($1, $2, $3, $4)", id, src, dst, amount)
					return err
				})
				results <- outcome{id, err}
				done.Add(1)
			}
		}()
	}

	// faults while the clients run: backends killed every few milliseconds, and one restart
	faultsDone := make(chan struct{})
	var killed int
	go func() {
		defer close(faultsDone)
		restarted := false
		for done.Load() < transfers {
			if !restarted && done.Load() >= transfers/2 {
				cl.Restart(t)
				restarted = true
				continue
			}
			killed += cl.TerminateBackends(t, url)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	wg.Wait()
	<-faultsDone
	close(results)

	var ok, failed, unknown []string
	exhausted := 0
	for o := range results {
		switch {
		case o.err == nil:
			ok = append(ok, o.id)
		case errors.Is(o.err, asyncengine.ErrCommitUnknown):
			unknown = append(unknown, o.id)
		default:
			require.True(t, errors.Is(o.err, errInsufficient) || errors.As(o.err, new(*asyncengine.RetryError)),
				"a transfer failed with an error the policy should have retried: %v", o.err)
			if !errors.Is(o.err, errInsufficient) {
				exhausted++
			}
			failed = append(failed, o.id)
		}
	}
	t.Logf("transfers: %d done, %d failed (%d of them after 100 attempts, the others for insufficient funds), %d of unknown outcome; retries: %d after serialization failures or deadlocks, %d after lost connections; %d backends killed, 1 restart",
		len(ok), len(failed), exhausted, len(unknown), serialization.Load(), lost.Load(), killed)
	require.Equal(t, transfers, len(ok)+len(failed)+len(unknown))
	require.NotZero(t, lost.Load(), "the restart happened while clients ran: some attempt lost its connection")

	// checked on a fresh engine: the last kill may have left dead connections in e's pool
	e = newEngine(t, url, "")
	r, err := e.Query(ctx, "SELECT sum(balance)::bigint FROM account")
	require.NoError(t, err)
	total, err := r.Scalar()
	require.NoError(t, err)
	require.EqualValues(t, accounts*initial, total, "money is conserved")

	// the transfers among ids whose number of ledger entries is outside [min, max]
	offending := func(ids []string, min, max int) string {
		t.Helper()
		r, err := e.Query(ctx, `SELECT coalesce(string_agg(id, ' '), '') FROM unnest($1::text[]) id
			WHERE (SELECT count(*) FROM ledger WHERE transfer = id) NOT BETWEEN $2 AND $3`, ids, min, max)
		require.NoError(t, err)
		var bad string
		require.NoError(t, r.One(&bad))
		return bad
	}
	require.Empty(t, offending(ok, 1, 1), "transfers that returned success are in the ledger exactly once")
	require.Empty(t, offending(failed, 0, 0), "transfers that returned an error are not in the ledger")
	require.Empty(t, offending(unknown, 0, 1), "transfers of unknown outcome are in the ledger at most once")
	r, err = e.Query(ctx, "SELECT count(*) FROM ledger WHERE transfer = ANY($1)", unknown)
	require.NoError(t, err)
	var committed int64
	require.NoError(t, r.One(&committed))
	t.Logf("of the %d transfers of unknown outcome, %d had committed", len(unknown), committed)
	// every account's balance is what its ledger entries say
	r, err = e.Query(ctx, `SELECT count(*) FROM account a WHERE a.balance <> $1
		- coalesce((SELECT sum(amount) FROM ledger WHERE src = a.id), 0)
		+ coalesce((SELECT sum(amount) FROM ledger WHERE dst = a.id), 0)`, initial)
	require.NoError(t, err)
	mismatched, err := r.Scalar()
	require.NoError(t, err)
	require.EqualValues(t, 0, mismatched, "balances agree with the ledger")
}

// ClassifyCommitError leaves an error it classified already as it is, so that a wrapper may pass
// Tx.Commit's error through it.
func TestClassifyCommitErrorTwice(t *testing.T) {
	e := newEngine(t, "sqlite://", "")
	unknown := &asyncengine.CommitUnknownError{Err: io.ErrUnexpectedEOF}
	require.Same(t, unknown, e.ClassifyCommitError(unknown))
}
