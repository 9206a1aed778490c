package sqldriver

import (
	"database/sql"
	"strings"

	"github.com/gosqla/gosqla/asyncengine/driver"
	_ "modernc.org/sqlite" // the embedded SQLite
)

func init() { driver.Register("sqlite", OpenSQLite) }

// OpenSQLite returns a connector for the embedded SQLite driver; cfg.DSN is a modernc "file:"
// name with its query.
func OpenSQLite(cfg driver.Config) (driver.Connector, error) {
	db, err := sql.Open("sqlite", cfg.DSN)
	if err != nil {
		return nil, err
	}
	target, _, _ := strings.Cut(strings.TrimPrefix(cfg.DSN, "file:"), "?")
	target = "SQLite database " + `"` + target + `"`
	return New(db, "sqlite", Probes{SerialConnect: true, Target: target}), nil
}
