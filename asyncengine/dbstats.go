package asyncengine

import "database/sql"

// DBStats returns the snapshot in database/sql's shape, for code and dashboards built around
// sql.DBStats: MaxOpenConnections is MaxOpen, OpenConnections CheckedIn+CheckedOut, InUse
// CheckedOut, Idle CheckedIn, WaitCount Waits and WaitDuration WaitTime. The pool does not count
// closes by cause, so MaxIdleClosed, MaxIdleTimeClosed and MaxLifetimeClosed stay 0 (Closes counts
// them all).
func (s PoolStats) DBStats() sql.DBStats {
	return sql.DBStats{
		MaxOpenConnections: s.MaxOpen,
		OpenConnections:    s.CheckedIn + s.CheckedOut,
		InUse:              s.CheckedOut,
		Idle:               s.CheckedIn,
		WaitCount:          s.Waits,
		WaitDuration:       s.WaitTime,
	}
}
