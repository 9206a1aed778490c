// Package pgtypes reads PostgreSQL values with pgx's type map, for both PostgreSQL drivers: the
// native one keeps the cells as they came off the wire, the database/sql one hands over what
// pgx's stdlib decoded. Either way a value reaches its destination by pgx's scan rules, so the
// same destination reads the same value through both.
package pgtypes

import (
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgtype"
)

// Maps are lent to results scanned after their connection went back to the pool: a *pgtype.Map
// caches scan plans and is not safe for concurrent use, and a connection's own map is in use by
// whoever holds the connection next. The lent maps are kept in a free list rather than a
// sync.Pool, which a garbage collection empties: a fresh map plans every scan again. Types
// registered on a connection only are unknown to these maps; such columns scan as text.
var (
	mapsMu sync.Mutex
	maps   []*pgtype.Map
)

// maxFreeMaps bounds the free list: more maps than scans running at once are never needed.
const maxFreeMaps = 256

// Map lends a type map; Release returns it.
func Map() *pgtype.Map {
	mapsMu.Lock()
	if n := len(maps); n > 0 {
		m := maps[n-1]
		maps = maps[:n-1]
		mapsMu.Unlock()
		return m
	}
	mapsMu.Unlock()
	return pgtype.NewMap()
}

// Release returns a map lent by Map.
func Release(m *pgtype.Map) {
	mapsMu.Lock()
	if len(maps) < maxFreeMaps {
		maps = append(maps, m)
	}
	mapsMu.Unlock()
}

// TypeName names a type OID as pgx's map does, or "" when it does not know it.
func TypeName(m *pgtype.Map, oid uint32) string {
	if t, ok := m.TypeForOID(oid); ok {
		return t.Name
	}
	return ""
}

// OIDForName finds the OID of a type name as database/sql's ColumnTypes reports it (pgx's name in
// upper case, or the OID itself for a type pgx does not know); 0 when unknown.
func OIDForName(m *pgtype.Map, name string) uint32 {
	if name == "" {
		return 0
	}
	if t, ok := m.TypeForName(strings.ToLower(name)); ok {
		return t.OID
	}
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(n)
	}
	return 0
}

// Decode returns a cell as pgx's Rows.Values would: the codec's Go type, a string for text of an
// unknown type, a copy of the bytes for binary of an unknown type, nil for NULL.
func Decode(m *pgtype.Map, oid uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	if t, ok := m.TypeForOID(oid); ok {
		return t.Codec.DecodeValue(m, oid, format, src)
	}
	if format == pgtype.TextFormatCode {
		return string(src), nil
	}
	return append([]byte(nil), src...), nil
}

// wire turns a value database/sql's pgx stdlib decoded back into the cell the native driver
// would have read: in the format pgx asks the server for (binary for most types), so that a
// destination accepts or refuses exactly what it does on the native driver.
func wire(m *pgtype.Map, oid uint32, v any) (int16, []byte, error) {
	if v == nil {
		return pgtype.TextFormatCode, nil, nil
	}
	t, known := m.TypeForOID(oid)
	s, isText := v.(string)
	switch {
	case !known && isText:
		return pgtype.TextFormatCode, []byte(s), nil
	case !known:
		oid = pgtype.TextOID
	case m.FormatCodeForOID(oid) == pgtype.TextFormatCode && isText:
		return pgtype.TextFormatCode, []byte(s), nil
	case oid == pgtype.JSONBOID:
		b, _ := v.([]byte)
		if isText {
			b = []byte(s)
		}
		return pgtype.BinaryFormatCode, append([]byte{1}, b...), nil
	case isText:
		// text of a type read in binary: parsed by its codec, then encoded as the server would
		dv, err := t.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, []byte(s))
		if err != nil {
			return 0, nil, err
		}
		v = dv
	}
	buf, err := m.Encode(oid, pgtype.BinaryFormatCode, v, nil)
	if err != nil {
		return 0, nil, err
	}
	if buf == nil {
		buf = []byte{}
	}
	return pgtype.BinaryFormatCode, buf, nil
}

// ScanValue scans a value read through database/sql from a column of type oid into dest by pgx's
// rules, exactly as the native driver scans the cell.
func ScanValue(m *pgtype.Map, oid uint32, v any, dest any) error {
	format, src, err := wire(m, oid, v)
	if err != nil {
		return err
	}
	return m.Scan(oid, format, src, dest)
}

// DecodeValue is Decode for a value read through database/sql.
func DecodeValue(m *pgtype.Map, oid uint32, v any) (any, error) {
	format, src, err := wire(m, oid, v)
	if err != nil {
		return nil, err
	}
	return Decode(m, oid, format, src)
}

// Cells holds a buffered result's rows as they came off the wire: one buffer for all the bytes,
// and for each cell where it lies in it.
type Cells struct {
	cols  []column
	buf   []byte
	spans []span // row-major
	// a result of a few columns and one row (a point select) needs no arrays of its own for
	// them: these back cols and spans until they outgrow them
	smallCols  [smallCells]column
	smallSpans [smallCells]span
}

const smallCells = 4

type column struct {
	oid    uint32
	format int16
}

type span struct{ start, end int32 } // start < 0: NULL

// Init prepares c to hold rows of columns with these types and formats.
func (c *Cells) Init(n int, col func(i int) (oid uint32, format int16)) {
	if n <= smallCells {
		c.cols = c.smallCols[:n:n]
	} else {
		c.cols = make([]column, n)
	}
	for i := range c.cols {
		c.cols[i].oid, c.cols[i].format = col(i)
	}
}

// Append copies one row's raw values.
func (c *Cells) Append(raw [][]byte) {
	if c.spans == nil {
		// sized for the first row: a point select allocates once for its bytes and once for
		// its cells
		size := 0
		for _, v := range raw {
			size += len(v)
		}
		c.buf = make([]byte, 0, size)
		if len(raw) <= smallCells {
			c.spans = c.smallSpans[:0:len(raw)]
		} else {
			c.spans = make([]span, 0, len(raw))
		}
	}
	for _, v := range raw {
		if v == nil {
			c.spans = append(c.spans, span{-1, -1})
			continue
		}
		start := int32(len(c.buf))
		c.buf = append(c.buf, v...)
		c.spans = append(c.spans, span{start, int32(len(c.buf))})
	}
}

// Len is the number of rows.
func (c *Cells) Len() int {
	if len(c.cols) == 0 {
		return 0
	}
	return len(c.spans) / len(c.cols)
}

func (c *Cells) cell(i, j int) []byte {
	s := c.spans[i*len(c.cols)+j]
	if s.start < 0 {
		return nil
	}
	return c.buf[s.start:s.end:s.end]
}

// Scan stores cell (i, j) into dest by pgx's rules.
func (c *Cells) Scan(i, j int, dest any) error {
	m := Map()
	err := m.Scan(c.cols[j].oid, c.cols[j].format, c.cell(i, j), dest)
	Release(m)
	return err
}

// Value decodes cell (i, j).
func (c *Cells) Value(i, j int) (any, error) {
	m := Map()
	v, err := Decode(m, c.cols[j].oid, c.cols[j].format, c.cell(i, j))
	Release(m)
	return v, err
}
