package asyncengine_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
)

var namedParam = regexp.MustCompile(`:[A-Za-z_][A-Za-z0-9_]*`)

// FuzzBind feeds statements with arguments of random shapes — none, Named with every, some or
// no key, a plain map, typed nils, positional values — to both dialects. Binding never panics;
// it either fails with an *ArgumentError or yields a statement whose placeholders match its
// arguments.
func FuzzBind(f *testing.F) {
	for _, s := range []string{
		"SELECT :id", "SELECT * FROM t WHERE a = :a AND b = :b OR a = :a", "SELECT $1, $2", "SELECT ?",
		"SELECT ':x' || :y -- :z", "SELECT $$ :a $$, :b::int", `SELECT ":q", :r`, "/* :c */ SELECT :d",
		"SELECT 1", "", ":", "::", "SELECT :é", "SELECT $tag$ :a $tag$ :b", "SELECT '\x00:a'",
	} {
		for shape := range byte(9) {
			f.Add(s, shape, byte(2))
		}
	}
	pg, err := asyncengine.New("postgresql://u@localhost/db")
	if err != nil {
		f.Fatal(err)
	}
	lite, err := asyncengine.New("sqlite://")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { pg.Close(); lite.Close() })
	f.Fuzz(func(t *testing.T, sql string, shape, n byte) {
		names := namedParam.FindAllString(sql, -1)
		var args []any
		switch shape % 9 {
		case 0: // none
		case 1: // Named with a value for every name found
			m := asyncengine.Named{}
			for _, name := range names {
				m[name[1:]] = len(name)
			}
			args = []any{m}
		case 2: // Named missing one name
			m := asyncengine.Named{}
			for i, name := range names {
				if i > 0 {
					m[name[1:]] = nil
				}
			}
			args = []any{m}
		case 3:
			args = []any{asyncengine.Named(nil)}
		case 4:
			args = []any{(*asyncengine.Named)(nil)}
		case 5: // a plain map
			m := map[string]any{}
			for _, name := range names {
				m[name[1:]] = 1
			}
			args = []any{m}
		case 6:
			args = []any{(map[string]any)(nil)}
		case 7: // positional typed nils
			for i := 0; i < int(n%5); i++ {
				args = append(args, (*int)(nil))
			}
		case 8: // positional values, one of them an untyped nil
			for i := 0; i < int(n%5); i++ {
				args = append(args, i)
			}
			args = append(args, nil)
		}
		for _, e := range []*asyncengine.Engine{pg, lite} {
			out, outArgs, err := e.Dialect().Bind(sql, args)
			if err != nil {
				var ae *asyncengine.ArgumentError
				if !errors.As(err, &ae) || !errors.Is(err, asyncengine.ErrInvalidArgument) {
					t.Fatalf("%s: Bind(%q, %#v): error %T %v is not an *ArgumentError", e.Dialect().Name(), sql, args, err, err)
				}
				if ae.Error() == "" {
					t.Fatal("empty message")
				}
				continue
			}
			if _, named := args0(args).(asyncengine.Named); !named {
				continue
			}
			// a rewritten statement binds its own arguments positionally
			if _, _, err := e.Dialect().Bind(out, outArgs); err != nil && len(namedParam.FindAllString(out, -1)) == 0 {
				var ae *asyncengine.ArgumentError
				if errors.As(err, &ae) && ae.Want != len(outArgs) && !mixesStyles(sql) {
					t.Fatalf("%s: Bind(%q) gave %q with %d argument(s): %v", e.Dialect().Name(), sql, out, len(outArgs), err)
				}
			}
		}
	})
}

func args0(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}

var positionalParam = regexp.MustCompile(`\$[0-9]|\?`)

// mixesStyles reports a statement with positional placeholders beside named ones, whose
// rewritten numbering need not match.
func mixesStyles(sql string) bool { return positionalParam.MatchString(sql) }
