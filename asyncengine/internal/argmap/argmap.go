// Package argmap readies a statement's arguments for a driver: each may be replaced by what the
// driver takes instead, and the slice is copied only once one is.
package argmap

// Map returns args with each argument a replaced by v where f reports it changed; args itself
// when none did. An error of f stops it, naming the argument's position (from 0) to f's caller.
func Map(args []any, f func(i int, a any) (v any, changed bool, err error)) ([]any, error) {
	var out []any
	for i, a := range args {
		v, changed, err := f(i, a)
		if err != nil {
			return nil, err
		}
		if out == nil && changed {
			out = append(make([]any, 0, len(args)), args[:i]...)
		}
		if out != nil {
			out = append(out, v)
		}
	}
	if out == nil {
		return args, nil
	}
	return out, nil
}
