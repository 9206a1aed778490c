package asyncengine

import "strings"

// txControl reports a statement that begins or ends a transaction: BEGIN, START TRANSACTION,
// COMMIT, END, ROLLBACK (not ROLLBACK [WORK | TRANSACTION] TO a savepoint), ABORT, PREPARE
// TRANSACTION.
func txControl(sql string) bool {
	word, rest := leadingWord(sql)
	switch {
	case is(word, "begin"), is(word, "start"), is(word, "commit"), is(word, "end"), is(word, "abort"):
		return true
	case is(word, "rollback"):
		next, rest := leadingWord(rest)
		if is(next, "work") || is(next, "transaction") {
			next, _ = leadingWord(rest)
		}
		return !is(next, "to")
	case is(word, "prepare"):
		next, _ := leadingWord(rest)
		return is(next, "transaction")
	}
	return false
}

// beginsTx reports a statement that opens a transaction.
func beginsTx(sql string) bool {
	word, _ := leadingWord(sql)
	return is(word, "begin") || is(word, "start")
}

// is compares a keyword without regard to case, allocating nothing (it runs for every statement
// of a transaction).
func is(word, keyword string) bool { return strings.EqualFold(word, keyword) }

// leadingWord returns the first word of s, after blanks, parentheses and comments, and what
// follows it.
func leadingWord(s string) (word, rest string) {
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
				continue
			}
			return "", ""
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s, "*/"); i >= 0 {
				s = s[i+2:]
				continue
			}
			return "", ""
		}
		break
	}
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
	if end < 0 {
		end = len(s)
	}
	return s[:end], s[end:]
}

// refuseTxControl keeps a statement from beginning or ending the open transaction behind its
// Tx's back: a COMMIT sent as SQL would commit, and the Tx, believing itself open, would later
// "roll back" nothing.
func (c *Conn) refuseTxControl(sql string) error {
	if c.tx == nil || !txControl(sql) {
		return nil
	}
	return &ArgumentError{SQL: sql, Fix: "a transaction is open on this connection: end it with Tx.Commit or Tx.Rollback (and nest one with Tx.BeginNested), not with the statement " + strings.TrimSpace(sql)}
}
