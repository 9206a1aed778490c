package main

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

// checkOutput compares the printed results with values computed here from the data the program
// loads: book b has 50 + b%400 pages and belongs to author 1 + b%authors.
func checkOutput(t *testing.T, out string) {
	t.Helper()
	var totalPages, long, firstPages, firstLong int
	for b := 1; b <= books; b++ {
		p := 50 + b%400
		totalPages += p
		if p > 200 {
			long++
		}
		if 1+b%authors == 1 {
			firstPages += p
			if p > 200 {
				firstLong++
			}
		}
	}
	assert.Contains(t, out, fmt.Sprintf("loaded %d authors and %d books in ", authors, books))
	assert.Contains(t, out, fmt.Sprintf("fan-out: %d pages summed by %d queries; %d long books counted, %d authors updated by RunSync\n",
		totalPages, authors, long, authors))
	assert.Contains(t, out, fmt.Sprintf("sample: author 1 (%d pages, %d long books)\n", firstPages, firstLong))
	assert.Contains(t, out, "checked_out=0 ", "every connection is back in the pool")
	assert.Contains(t, out, " timeouts=0\n")
	assert.Contains(t, out, " panics=0\n")
}

func TestRunsOnSQLite(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(enginetest.Context(t), "", &out))
	t.Log(out.String())
	checkOutput(t, out.String())
}

func TestRunsOnPostgreSQL(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(enginetest.Context(t), enginetest.NewDatabase(t), &out))
	t.Log(out.String())
	checkOutput(t, out.String())
}
