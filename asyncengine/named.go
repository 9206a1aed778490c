package asyncengine

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Named holds arguments for :name placeholders. Pass it as the only argument:
//
//	e.Query(ctx, "SELECT * FROM users WHERE id = :id", asyncengine.Named{"id": 7})
//
// The statement is rewritten to the dialect's placeholders ($1 or ?) before it is sent. String
// literals, quoted identifiers, comments, dollar-quoted bodies and ::casts are left alone.
type Named map[string]any

// bindArgs rewrites sql for the dialect and checks the arguments against its placeholders, so
// that a mismatch fails before anything is sent.
func bindArgs(d *Dialect, sql string, args []any) (string, []any, error) {
	if len(args) == 1 {
		if named, ok := args[0].(Named); ok {
			return bindNamed(d, sql, named)
		}
	}
	want := 0
	named := ""
	scanSQL(sql, d.positional, func(kind tokenKind, start, end int) {
		switch kind {
		case tokNamedParam:
			if named == "" {
				named = sql[start+1 : end]
			}
		case tokDollarParam:
			if n, err := strconv.Atoi(sql[start+1 : end]); err == nil && n > want && d.positional {
				want = n
			}
		case tokQuestion:
			// PostgreSQL's ? is an operator (jsonb), never a placeholder.
			if !d.positional {
				want++
			}
		}
	})
	if named != "" && want == 0 {
		if len(args) == 1 && isStringMap(args[0]) {
			// a map is a positional value (a json document) where the statement has a placeholder
			return "", nil, &ArgumentError{SQL: sql, Missing: named, Fix: fmt.Sprintf("a %T is taken as one positional argument; pass asyncengine.Named(m) for :name placeholders", args[0])}
		}
		return "", nil, &ArgumentError{SQL: sql, Missing: named, Fix: fmt.Sprintf("pass its value as asyncengine.Named{%q: …}", named)}
	}
	if want != len(args) {
		return "", nil, &ArgumentError{SQL: sql, Want: want, Got: len(args)}
	}
	return sql, args, tooManyParams(d, sql, len(args))
}

// tooManyParams refuses a statement with more parameters than the dialect binds, before it is
// sent: PostgreSQL's protocol counts them in 16 bits, and a longer message breaks the connection.
func tooManyParams(d *Dialect, sql string, n int) error {
	if n <= d.MaxParams {
		return nil
	}
	fix := "send a long list as one array (col = ANY(:ids)), or split it"
	if !d.positional {
		fix = "split a long list into parts, or send it as one JSON array (col IN (SELECT value FROM json_each(:ids)), the list JSON-encoded)"
	}
	return &ArgumentError{SQL: sql, Got: n, Fix: fmt.Sprintf("the statement has %d parameters, more than the %d one %s statement takes; %s", n, d.MaxParams, d.name, fix)}
}

func bindNamed(d *Dialect, sql string, named Named) (string, []any, error) {
	var b strings.Builder
	var args []any
	// where each name's value is, as one parameter and as an IN list's first: the same name may
	// be both ("= ANY(:ids) OR x IN (:ids)")
	index, listIndex := map[string]int{}, map[string]int{}
	last := 0
	var missing, fix string
	used := make(map[string]bool, len(named))
	scanSQL(sql, d.positional, func(kind tokenKind, start, end int) {
		if missing != "" || fix != "" {
			return
		}
		if kind == tokDollarParam || kind == tokQuestion && !d.positional {
			fix = fmt.Sprintf("the statement has the positional placeholder %s, and Named values: name it (:name) and give its value in the Named map, or pass positional arguments only", sql[start:end])
			return
		}
		if kind != tokNamedParam {
			return
		}
		name := sql[start+1 : end]
		if end < len(sql) && sql[end] == '$' {
			// PostgreSQL reads "$" as part of a name: ":a$" is ambiguous, and once rewritten the
			// "$" could open a dollar quote
			missing, fix = name, "put a space between :"+name+" and the \"$\" that follows it"
			return
		}
		v, ok := named[name]
		if !ok {
			missing = name
			return
		}
		used[name] = true
		b.WriteString(sql[last:start])
		last = end
		if start > 0 && sql[start-1] == '$' {
			b.WriteByte(' ') // "$$1" would open a dollar quote
		}
		if list, paren, ok := inList(sql[:start], sql[end:], v); ok {
			if list.Len() == 0 {
				missing, fix = name, "the list bound to :"+name+" after IN is empty, and IN () is not SQL; leave the condition out when there is nothing to match"
				return
			}
			first, seen := listIndex[name]
			if !seen || !d.positional {
				first = len(args) + 1
				for i := range list.Len() {
					args = append(args, list.Index(i).Interface())
				}
				listIndex[name] = first
			}
			if !paren {
				b.WriteByte('(')
			}
			for i := range list.Len() {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(d.Placeholder(first + i))
			}
			if !paren {
				b.WriteByte(')')
			}
			return
		}
		if d.positional {
			n, seen := index[name]
			if !seen {
				args = append(args, v)
				n = len(args)
				index[name] = n
			}
			b.WriteString("$" + strconv.Itoa(n))
			return
		}
		args = append(args, v)
		b.WriteByte('?')
	})
	if missing != "" || fix != "" {
		return "", nil, &ArgumentError{SQL: sql, Missing: missing, Fix: fix}
	}
	if len(used) < len(named) {
		// a key the statement does not use is most often a misspelt one
		var extra []string
		for k := range named {
			if !used[k] {
				extra = append(extra, ":"+k)
			}
		}
		slices.Sort(extra)
		return "", nil, &ArgumentError{SQL: sql, Fix: fmt.Sprintf("the Named arguments have key(s) the statement does not use (%s): check their spelling, or remove them", strings.Join(extra, ", "))}
	}
	b.WriteString(sql[last:])
	return b.String(), args, tooManyParams(d, sql, len(args))
}

// inList reports whether v, bound to a placeholder between before and after, is a list that
// IN expands into one placeholder per element (x IN (:ids) or x IN :ids, on every dialect); paren
// reports that the placeholder already stands between parentheses. A []byte is one value.
func inList(before, after string, v any) (list reflect.Value, paren, ok bool) {
	list = reflect.ValueOf(v)
	if list.Kind() != reflect.Slice || list.Type().Elem().Kind() == reflect.Uint8 {
		return list, false, false
	}
	before = strings.TrimRight(before, " \t\r\n")
	if strings.HasSuffix(before, "(") {
		paren = true
		before = strings.TrimRight(before[:len(before)-1], " \t\r\n")
		if !strings.HasPrefix(strings.TrimLeft(after, " \t\r\n"), ")") {
			return list, false, false
		}
	}
	n := len(before)
	if n < 2 || !strings.EqualFold(before[n-2:], "in") || (n > 2 && isIdentByte(before[n-3])) {
		return list, false, false
	}
	return list, paren, true
}

// isIdentByte reports a byte that can end the name before "in" (a column, a quoted or qualified
// one), so that "... login :x" is not read as IN.
func isIdentByte(c byte) bool {
	return isIdent(c) || c == '$' || c == '.' || c == '"'
}

// oneStatement returns an *ArgumentError when sql holds more than one statement: text other than
// blanks and comments after a ";" outside literals.
func oneStatement(sql string, nested bool) error {
	end := -1
	scanSQL(sql, nested, func(kind tokenKind, start, _ int) {
		if kind == tokSemicolon && end < 0 {
			end = start
		}
	})
	if end < 0 || strings.TrimSpace(stripComments(sql[end+1:], nested)) == "" {
		return nil
	}
	return &ArgumentError{SQL: sql, Fix: "the statement holds more than one SQL statement; send one per call (a script runs with Conn.Exec, on PostgreSQL)"}
}

// stripComments removes -- and /* */ comments, for deciding whether text is empty.
func stripComments(s string, nested bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "--"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := skipComment(s, i, nested)
			if end < 0 {
				return b.String()
			}
			i = end - 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// isStringMap reports a map keyed by strings, the shape of Named under another type.
func isStringMap(v any) bool {
	t := reflect.TypeOf(v)
	return t != nil && t.Kind() == reflect.Map && t.Key().Kind() == reflect.String
}

type tokenKind int

const (
	tokNamedParam  tokenKind = iota // :name
	tokDollarParam                  // $1
	tokQuestion                     // ?
	tokSemicolon                    // ; ending a statement
)

// isIdentStart reports a byte that can start a name: PostgreSQL (and SQLite) take every byte of a
// multibyte character as a letter.
func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}
func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// scanSQL reports placeholders outside literals, quoted identifiers, comments and dollar quotes;
// nested: block comments nest, as PostgreSQL's do.
func scanSQL(sql string, nested bool, emit func(kind tokenKind, start, end int)) {
	n := len(sql)
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case c == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i == 1 || !isIdent(sql[i-2])):
			i = skipEscaped(sql, i)
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(sql, i, c)
		case c == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < n && sql[i+1] == '*':
			if i = skipComment(sql, i, nested); i < 0 {
				return
			}
		case c == ':':
			if i+1 < n && sql[i+1] == ':' { // a ::cast
				i += 2
				for i < n && isIdent(sql[i]) {
					i++
				}
				continue
			}
			if i+1 < n && isIdentStart(sql[i+1]) && (i == 0 || !isIdent(sql[i-1])) {
				j := i + 1
				for j < n && isIdent(sql[j]) {
					j++
				}
				emit(tokNamedParam, i, j)
				i = j
				continue
			}
			i++
		case c == '?':
			emit(tokQuestion, i, i+1)
			i++
		case c == ';':
			emit(tokSemicolon, i, i+1)
			i++
		case c == '$':
			j := i + 1
			for j < n && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			if j > i+1 && (i == 0 || !isIdent(sql[i-1])) {
				emit(tokDollarParam, i, j)
				i = j
				continue
			}
			// a dollar quote: $$…$$ or $tag$…$tag$
			j = i + 1
			for j < n && isIdent(sql[j]) {
				j++
			}
			if j < n && sql[j] == '$' && (i == 0 || !isIdent(sql[i-1])) {
				tag := sql[i : j+1]
				end := strings.Index(sql[j+1:], tag)
				if end < 0 {
					return
				}
				i = j + 1 + end + len(tag)
				continue
			}
			i++
		default:
			i++
		}
	}
}

// skipComment returns the index after the block comment starting at i, or -1 when it does not
// end. PostgreSQL's block comments nest (nested); SQLite's end at the first "*/".
func skipComment(sql string, i int, nested bool) int {
	depth := 0
	for j := i; j+1 < len(sql); j++ {
		switch {
		case sql[j] == '/' && sql[j+1] == '*' && (nested || depth == 0):
			depth++
			j++
		case sql[j] == '*' && sql[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}

// skipEscaped returns the index after a PostgreSQL escape string (E'…') whose quote is at i: a
// backslash escapes the byte after it, and a doubled quote is a quote. A string continued after
// a line break ('a'<newline>'b') is one string, still an escape string.
func skipEscaped(sql string, i int) int {
	for j := i + 1; j < len(sql); j++ {
		switch {
		case sql[j] == '\\':
			j++
		case sql[j] == '\'' && j+1 < len(sql) && sql[j+1] == '\'':
			j++
		case sql[j] == '\'':
			if k, ok := continued(sql, j+1); ok {
				j = k
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}

// continued reports whether the string literal that ended before i goes on: blanks holding a
// line break, then a quote, whose index it returns.
func continued(sql string, i int) (int, bool) {
	newline := false
	for ; i < len(sql); i++ {
		switch sql[i] {
		case '\n', '\r':
			newline = true
		case ' ', '\t', '\f':
		case '\'':
			return i, newline
		default:
			return i, false
		}
	}
	return i, false
}

// skipQuoted returns the index after the quoted run starting at i; a doubled quote is an escape.
func skipQuoted(sql string, i int, q byte) int {
	for j := i + 1; j < len(sql); j++ {
		if sql[j] == q {
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(sql)
}
