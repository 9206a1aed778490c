package sqldriver

import (
	"database/sql"
	sqldrv "database/sql/driver"
	"errors"
	"fmt"
	"testing"
)

func TestIsDisconnectClassification(t *testing.T) {
	probe := errors.New("probe says gone")
	c := &Connector{isDisconnect: func(err error) bool { return errors.Is(err, probe) }}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{sqldrv.ErrBadConn, true},
		{fmt.Errorf("exec: %w", sqldrv.ErrBadConn), true},
		{sql.ErrConnDone, true},
		{probe, true},
		{errors.New("syntax error"), false},
		{nil, false},
	} {
		if got := c.IsDisconnect(tc.err); got != tc.want {
			t.Errorf("IsDisconnect(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if (&Connector{}).IsDisconnect(errors.New("other")) {
		t.Error("without a probe only ErrBadConn and ErrConnDone are disconnects")
	}
}
