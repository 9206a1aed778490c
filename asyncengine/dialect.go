package asyncengine

import (
	"strconv"
	"strings"
)

// Dialect describes the SQL a database speaks: placeholders, identifier quoting, and which
// statements it offers (RETURNING, ON CONFLICT, savepoints are common to both dialects here).
type Dialect struct {
	name       string
	positional bool // $1, $2 … rather than ?
	// MaxParams is the most bound parameters one statement may carry.
	MaxParams int
}

var (
	dialectPostgres = &Dialect{name: "postgresql", positional: true, MaxParams: 65535}
	dialectSQLite   = &Dialect{name: "sqlite", MaxParams: 32766}
)

func dialectFor(name string) *Dialect {
	if name == "sqlite" {
		return dialectSQLite
	}
	return dialectPostgres
}

// Name is "postgresql" or "sqlite".
func (d *Dialect) Name() string { return d.name }

// Placeholder returns the placeholder for the n-th (1-based) argument.
func (d *Dialect) Placeholder(n int) string {
	if d.positional {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// Quote quotes an identifier; a dotted name (schema.table) is quoted part by part.
func (d *Dialect) Quote(ident string) string {
	parts := strings.Split(ident, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// Bind rewrites a statement's placeholders for the dialect and checks its arguments, as Exec and
// Query do: one Named argument for :name placeholders, or positional arguments.
func (d *Dialect) Bind(sql string, args []any) (string, []any, error) {
	return bindArgs(d, sql, args)
}

// OneStatement returns an *ArgumentError when sql holds more than one statement (a ";" outside
// literals and comments followed by more SQL): layers that pipeline statements, such as the
// session, send one statement per request.
func (d *Dialect) OneStatement(sql string) error {
	return oneStatement(sql)
}
