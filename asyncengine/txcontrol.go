package asyncengine

import "strings"

// txControl reports a statement that begins or ends a transaction: BEGIN, START TRANSACTION,
// COMMIT, END, ROLLBACK (not ROLLBACK TO a savepoint), ABORT, PREPARE TRANSACTION.
func txControl(sql string) bool {
	word, rest := leadingWord(sql)
	switch word {
	case "begin", "start", "commit", "end", "abort":
		return true
	case "rollback":
		next, _ := leadingWord(rest)
		return next != "to"
	case "prepare":
		next, _ := leadingWord(rest)
		return next == "transaction"
	}
	return false
}

// beginsTx reports a statement that opens a transaction.
func beginsTx(sql string) bool {
	word, _ := leadingWord(sql)
	return word == "begin" || word == "start"
}

// leadingWord returns the first word of s in lower case, and what follows it.
func leadingWord(s string) (word, rest string) {
	s = strings.TrimLeft(s, " \t\r\n(")
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
	})
	if end < 0 {
		end = len(s)
	}
	return strings.ToLower(s[:end]), s[end:]
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
