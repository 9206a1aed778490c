package asyncengine

import (
	"errors"
	"fmt"
	"reflect"
	"unicode/utf8"
)

// logCap bounds each logged value and error text: a 100 MB argument does not make a 100 MB line.
const logCap = 1024

// logArgsMax bounds the arguments logged for one statement.
const logArgsMax = 32

// capped cuts s to logCap bytes (on a rune boundary), saying how much was left out.
func capped(s string) string {
	if len(s) <= logCap {
		return s
	}
	cut := logCap
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(%d more bytes)", s[:cut], len(s)-cut)
}

// statementError is a statement's error as the echo log shows it. Server errors and argument
// encoding errors may quote argument values, so without log_parameters only the SQLSTATE and
// the error's type are logged.
func statementError(err error, params bool) string {
	if params {
		return capped(err.Error())
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		return fmt.Sprintf("SQLSTATE %s (message hidden: it may quote argument values; log_parameters=true logs it)", coded.SQLState())
	}
	return fmt.Sprintf("%T (message hidden: it may quote argument values; log_parameters=true logs it)", err)
}

// statementArgs are a statement's arguments as the echo log shows them: their number, or with
// log_parameters their values, each capped.
func statementArgs(args []any, params bool) any {
	if !params {
		return len(args)
	}
	out := make([]string, 0, min(len(args), logArgsMax)+1)
	for i, a := range args {
		if i == logArgsMax {
			out = append(out, fmt.Sprintf("…(%d more)", len(args)-logArgsMax))
			break
		}
		out = append(out, capped(fmt.Sprintf("%v", pointee(a))))
	}
	return out
}

// pointee is the value a pointer argument (a nullable field's *int64) refers to, as it is sent;
// nil for a nil pointer. Another value, or one that formats itself (a *big.Int), is itself.
func pointee(a any) any {
	if _, ok := a.(fmt.Stringer); ok {
		return a
	}
	v := reflect.ValueOf(a)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if !v.IsValid() || !v.CanInterface() {
		return a
	}
	return v.Interface()
}

// errorText is an error of the pool (a failed connect, an invalidation) as the echo log shows it.
func (b *poolBase) errorText(err error) string { return statementError(err, true) }
