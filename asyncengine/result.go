package asyncengine

import (
	"fmt"
	"reflect"
	"time"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Result is a statement's result, read in full. Its rows keep the values as the driver read
// them; One, ScanRow, ScanOne and ScanAll scan each value with the driver's own type system
// straight into the destination (pgx's type map on PostgreSQL, database/sql's rules on SQLite).
// A Result may be scanned after its connection went back to the pool, by one goroutine at a time.
type Result struct {
	columns      []driver.Column
	names        []string
	rows         driver.RowSet
	pg           bool
	rowsAffected int64
	smallNames   [4]string // backs names for a narrow result: no allocation of their own
}

func newResult(r *driver.Result, pg bool) *Result {
	res := resultOf(r, pg)
	return &res
}

// resultOf wraps a driver result; pg: the rows scan by pgx's rules.
func resultOf(r *driver.Result, pg bool) Result {
	return Result{columns: r.Columns, rows: r.Rows, rowsAffected: r.RowsAffected, pg: pg}
}

// Columns returns the column names.
func (r *Result) Columns() []string {
	if r.names == nil {
		if n := len(r.columns); n <= len(r.smallNames) {
			r.names = r.smallNames[:n:n]
			for i, c := range r.columns {
				r.names[i] = c.Name
			}
		} else {
			r.names = columnNames(r.columns)
		}
	}
	return r.names
}

func columnNames(cols []driver.Column) []string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names
}

// ColumnTypes returns the database type of each column ("int4", "numeric", "_text" for text[] on
// PostgreSQL; the declared type on SQLite), "" where the driver does not know it.
func (r *Result) ColumnTypes() []string { return columnTypes(r.columns) }

func columnTypes(cols []driver.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.TypeName
	}
	return out
}

// Len is the number of rows.
func (r *Result) Len() int {
	if r.rows == nil {
		return 0
	}
	return r.rows.Len()
}

// RowsAffected is the number of rows the statement changed (or returned, for a query).
func (r *Result) RowsAffected() int64 { return r.rowsAffected }

// Values returns the rows as untyped Go values (see the package documentation for the Go type of
// each PostgreSQL type).
func (r *Result) Values() ([][]any, error) { return r.decode(false) }

// Rows returns the rows as untyped Go values, as Values does. A value the driver cannot decode
// (a type it does not know in binary form) is left as its *ConvertError; Values reports it.
func (r *Result) Rows() [][]any {
	rows, _ := r.decode(true)
	return rows
}

// decode decodes every row; keep leaves a failure in place of its value instead of returning it.
func (r *Result) decode(keep bool) ([][]any, error) {
	out := make([][]any, r.Len())
	for i := range out {
		row := make([]any, len(r.columns))
		for j := range row {
			v, err := r.value(i, j)
			if err != nil && !keep {
				return nil, err
			}
			if err != nil {
				v = err
			}
			row[j] = v
		}
		out[i] = row
	}
	return out, nil
}

func (r *Result) value(i, j int) (any, error) {
	v, err := r.rows.Value(i, j)
	if err != nil {
		return nil, valueError(r.columns[j], err)
	}
	return v, nil
}

// valueError reports a value of col the driver could not decode to an untyped Go value.
func valueError(col driver.Column, err error) error {
	return &ConvertError{Column: col.Name, DBType: col.TypeName, To: "any", Err: err}
}

// Scalar returns the first column of the first row, or ErrNoRows.
func (r *Result) Scalar() (any, error) {
	if r.Len() == 0 {
		return nil, ErrNoRows
	}
	if len(r.columns) == 0 {
		return nil, fmt.Errorf("gosqla: the result has no columns")
	}
	return r.value(0, 0)
}

// One scans the only row into dest, one pointer per column. No row is ErrNoRows, several are
// ErrMultipleRows.
func (r *Result) One(dest ...any) error {
	switch n := r.Len(); {
	case n == 0:
		return ErrNoRows
	case n > 1:
		return ErrMultipleRows
	}
	return r.ScanRow(0, dest...)
}

// ScanRow scans row i into dest, one pointer per column. A nil destination skips its column. A
// value its destination cannot hold (NULL into a non-pointer, out of range, a fraction into an
// integer) is a *ConvertError naming the column, and then no destination is changed.
func (r *Result) ScanRow(i int, dest ...any) error {
	if i < 0 || i >= r.Len() {
		return fmt.Errorf("gosqla: row %d of a result of %d row(s)", i, r.Len())
	}
	return scanRow(r, i, len(r.columns), dest)
}

// cells is a row source: a buffered result, or a stream's current row.
type cells interface {
	scanCell(i, j int, d any) error
}

func scanRow(src cells, i, ncols int, dest []any) error {
	if len(dest) != ncols {
		return fmt.Errorf("gosqla: %d destination(s) for %d column(s)", len(dest), ncols)
	}
	// Destinations that a failed scan leaves unchanged (the basic types) are scanned in place,
	// their old values kept to be put back if a later column fails; the others are scanned into
	// fresh values first and stored once every column succeeded. Nothing is stored on error.
	var saves [8]saved
	var tmp [8]reflect.Value
	vals := tmp[:0]
	for j, d := range dest {
		if d == nil {
			vals = append(vals, reflect.Value{})
			continue
		}
		dv := reflect.ValueOf(d)
		if dv.Kind() != reflect.Pointer || dv.IsNil() {
			return fmt.Errorf("gosqla: destination %d is %T, not a non-nil pointer", j, d)
		}
		if j < len(saves) && atomicScan(d) {
			vals = append(vals, reflect.Value{})
			continue
		}
		v := reflect.New(dv.Type().Elem())
		if err := src.scanCell(i, j, v.Interface()); err != nil {
			return err
		}
		vals = append(vals, v)
	}
	for j, d := range dest {
		if d == nil || vals[j].IsValid() {
			continue
		}
		saves[j].save(d)
		if err := src.scanCell(i, j, d); err != nil {
			for k := range j {
				if dest[k] != nil && !vals[k].IsValid() {
					saves[k].restore(dest[k])
				}
			}
			return err
		}
	}
	for j, v := range vals {
		if v.IsValid() {
			reflect.ValueOf(dest[j]).Elem().Set(v.Elem())
		}
	}
	return nil
}

// saved is the old value of a destination atomicScan accepts.
type saved struct {
	n int64
	f float64
	s string
	t time.Time
}

func (sv *saved) save(d any) {
	switch p := d.(type) {
	case *int64:
		sv.n = *p
	case *int32:
		sv.n = int64(*p)
	case *int16:
		sv.n = int64(*p)
	case *int8:
		sv.n = int64(*p)
	case *int:
		sv.n = int64(*p)
	case *bool:
		sv.n = 0
		if *p {
			sv.n = 1
		}
	case *float64:
		sv.f = *p
	case *float32:
		sv.f = float64(*p)
	case *string:
		sv.s = *p
	case *time.Time:
		sv.t = *p
	}
}

func (sv *saved) restore(d any) {
	switch p := d.(type) {
	case *int64:
		*p = sv.n
	case *int32:
		*p = int32(sv.n)
	case *int16:
		*p = int16(sv.n)
	case *int8:
		*p = int8(sv.n)
	case *int:
		*p = int(sv.n)
	case *bool:
		*p = sv.n == 1
	case *float64:
		*p = sv.f
	case *float32:
		*p = float32(sv.f)
	case *string:
		*p = sv.s
	case *time.Time:
		*p = sv.t
	}
}

// atomicScan reports destinations a failed scan leaves unchanged.
func atomicScan(d any) bool {
	switch d.(type) {
	case *int64, *int32, *int16, *int8, *int, *float64, *float32, *bool, *string, *time.Time:
		return true
	}
	return false
}

// scanCell scans cell (i, j) into d, reporting a failure as a *ConvertError.
func (r *Result) scanCell(i, j int, d any) error {
	if err := r.rows.Scan(i, j, d); err != nil {
		v, _ := r.rows.Value(i, j)
		return convertError(r.columns[j], reflect.TypeOf(d), v == nil, r.pg, err)
	}
	return nil
}

func convertError(col driver.Column, dt reflect.Type, null, pg bool, err error) error {
	to := dt
	if to.Kind() == reflect.Pointer {
		to = to.Elem()
	}
	return &ConvertError{Column: col.Name, DBType: col.TypeName, To: to.String(), Null: null,
		Fix: structmap.FixFor(to, col.TypeName, null, pg), Err: err}
}

// Mappings returns each row as a map from column name to its untyped value (see Rows).
func (r *Result) Mappings() []map[string]any {
	rows := r.Rows()
	out := make([]map[string]any, len(rows))
	for i, row := range rows {
		m := make(map[string]any, len(row))
		for j, v := range row {
			m[r.columns[j].Name] = v
		}
		out[i] = m
	}
	return out
}

// ScanAll scans every row of r into a new T, matching columns to the fields' `db` tags.
// Columns without a field are an error, so that a typo does not silently drop data.
func ScanAll[T any](r *Result) ([]T, error) {
	m, err := structmap.Of(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	fields, err := columnFields(m, r.Columns())
	if err != nil {
		return nil, err
	}
	out := make([]T, r.Len())
	for i := range out {
		if err := scanFields(r, i, reflect.ValueOf(&out[i]).Elem(), fields); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanFields scans row i into the fields of struct v, one per column (nil: skipped).
func scanFields(src cells, i int, v reflect.Value, fields []*structmap.Field) error {
	for j, f := range fields {
		if f == nil {
			continue
		}
		if err := src.scanCell(i, j, v.FieldByIndex(f.Index).Addr().Interface()); err != nil {
			return err
		}
	}
	return nil
}

// ScanOne scans the only row of r into a T.
func ScanOne[T any](r *Result) (T, error) {
	var zero T
	switch n := r.Len(); {
	case n == 0:
		return zero, ErrNoRows
	case n > 1:
		return zero, ErrMultipleRows
	}
	all, err := ScanAll[T](r)
	if err != nil {
		return zero, err
	}
	return all[0], nil
}

func columnFields(m *structmap.Model, columns []string) ([]*structmap.Field, error) {
	fields := make([]*structmap.Field, len(columns))
	for i, c := range columns {
		if fields[i] = m.Column(c); fields[i] == nil {
			return nil, &structmap.MappingError{Type: m.Type.String(), Reason: fmt.Sprintf("result column %q has no field (tag a field `db:%q`)", c, c)}
		}
	}
	return fields, nil
}
