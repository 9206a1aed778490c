package pgxdriver

import "testing"

func TestNoRows(t *testing.T) {
	for sql, want := range map[string]bool{
		"BEGIN":                                  true,
		"  commit;":                              true,
		"ROLLBACK TO SAVEPOINT a":                true,
		"UPDATE t SET a = 1 WHERE id = $1":       true,
		"insert into t values (1)":               true,
		"INSERT INTO t VALUES (1) RETURNING id":  false,
		"delete from t where id = 1 returning *": false,
		"UPDATE t SET a = 1\nReturning a":        false,
		"SELECT 1":                               false,
		"WITH x AS (DELETE FROM t) SELECT 1":     false,
		"VALUES (1)":                             false,
		"":                                       false,
	} {
		if got := noRows(sql); got != want {
			t.Errorf("noRows(%q) = %v, want %v", sql, got, want)
		}
	}
}
