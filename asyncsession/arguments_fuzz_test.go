package asyncsession_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
)

// FuzzSessionArguments sends statements with arguments of random shapes — Named, plain maps,
// typed nils, positional values — through a session on SQLite. Nothing panics, and a statement
// refused before sending leaves the session usable without a Rollback.
func FuzzSessionArguments(f *testing.F) {
	for _, s := range []string{"SELECT :id", "SELECT ?", "SELECT :a, :b", "SELECT 1", "SELECT ':x'", "SELECT 1; SELECT 2"} {
		for shape := range byte(6) {
			f.Add(s, shape)
		}
	}
	e, err := asyncengine.New("sqlite://")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close() })
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, sql string, shape byte) {
		var args []any
		switch shape % 6 {
		case 1:
			args = []any{asyncengine.Named{"id": 1, "a": nil, "b": (*int)(nil)}}
		case 2:
			args = []any{map[string]any{"id": 1}}
		case 3:
			args = []any{(*asyncengine.Named)(nil)}
		case 4:
			args = []any{(*string)(nil)}
		case 5:
			args = []any{nil, 1}
		}
		s := asyncsession.New(e)
		defer s.Close()
		_, err := s.Execute(ctx, sql, args...).Await(ctx)
		var ae *asyncengine.ArgumentError
		if !errors.As(err, &ae) {
			return
		}
		if _, err := s.Execute(ctx, "SELECT 1").Await(ctx); err != nil {
			t.Fatalf("after %q was refused before sending, the session fails: %v", sql, err)
		}
	})
}
