package asyncengine

import (
	"fmt"
	"reflect"

	"github.com/gosqla/gosqla/asyncengine/driver"
	"github.com/gosqla/gosqla/internal/structmap"
)

// Result is a statement's result, read in full.
type Result struct {
	columns      []string
	rows         [][]any
	rowsAffected int64
}

func newResult(r *driver.Result) *Result {
	return &Result{columns: r.Columns, rows: r.Rows, rowsAffected: r.RowsAffected}
}

// NewResult wraps a driver result (for layers above the engine that run pipelines).
func NewResult(r *driver.Result) *Result { return newResult(r) }

// Columns returns the column names.
func (r *Result) Columns() []string { return r.columns }

// Rows returns the rows as driver values.
func (r *Result) Rows() [][]any { return r.rows }

// Len is the number of rows.
func (r *Result) Len() int { return len(r.rows) }

// RowsAffected is the number of rows the statement changed (or returned, for a query).
func (r *Result) RowsAffected() int64 { return r.rowsAffected }

// Scalar returns the first column of the first row, or ErrNoRows.
func (r *Result) Scalar() (any, error) {
	if len(r.rows) == 0 {
		return nil, ErrNoRows
	}
	if len(r.rows[0]) == 0 {
		return nil, fmt.Errorf("gosqla: the result has no columns")
	}
	return r.rows[0][0], nil
}

// One scans the only row into dest, one pointer per column. No row is ErrNoRows, several are
// ErrMultipleRows.
func (r *Result) One(dest ...any) error {
	switch {
	case len(r.rows) == 0:
		return ErrNoRows
	case len(r.rows) > 1:
		return ErrMultipleRows
	}
	return r.ScanRow(0, dest...)
}

// ScanRow scans row i into dest, one pointer per column.
func (r *Result) ScanRow(i int, dest ...any) error {
	row := r.rows[i]
	if len(dest) != len(row) {
		return fmt.Errorf("gosqla: %d destination(s) for %d column(s)", len(dest), len(row))
	}
	for j, d := range dest {
		dv := reflect.ValueOf(d)
		if dv.Kind() != reflect.Pointer || dv.IsNil() {
			return fmt.Errorf("gosqla: destination %d is %T, not a non-nil pointer", j, d)
		}
		if err := assign(dv.Elem(), row[j], r.columns[j]); err != nil {
			return err
		}
	}
	return nil
}

func assign(dst reflect.Value, v any, column string) error {
	err := structmap.Assign(dst, v)
	if ce, ok := err.(*structmap.ConvertError); ok {
		ce.Column = column
	}
	return err
}

// Mappings returns each row as a map from column name to value.
func (r *Result) Mappings() []map[string]any {
	out := make([]map[string]any, len(r.rows))
	for i, row := range r.rows {
		m := make(map[string]any, len(row))
		for j, v := range row {
			m[r.columns[j]] = v
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
	fields, err := columnFields(m, r.columns)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(r.rows))
	for i, row := range r.rows {
		v := reflect.ValueOf(&out[i]).Elem()
		for j, f := range fields {
			if err := assign(v.FieldByIndex(f.Index), row[j], r.columns[j]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ScanOne scans the only row of r into a T.
func ScanOne[T any](r *Result) (T, error) {
	var zero T
	switch {
	case len(r.rows) == 0:
		return zero, ErrNoRows
	case len(r.rows) > 1:
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
