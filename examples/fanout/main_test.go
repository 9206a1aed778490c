package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

func checkOutput(t *testing.T, out string) {
	t.Helper()
	assert.Contains(t, out, fmt.Sprintf("list %d ids: ", products))
	assert.Contains(t, out, fmt.Sprintf("get %d products through one session's futures: ", products))
	assert.Contains(t, out, fmt.Sprintf("upsert %d scores and commit: ", products))
}

func TestRunsOnSQLite(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(enginetest.Context(t), "", &out))
	t.Log(out.String())
	checkOutput(t, out.String())
	assert.Contains(t, out.String(), "round trips: not counted on SQLite")
}

func TestRunsOnPostgreSQL(t *testing.T) {
	var out bytes.Buffer
	url := enginetest.NewDatabase(t)
	require.NoError(t, run(enginetest.Context(t), url, &out))
	t.Log(out.String())
	checkOutput(t, out.String())
	m := regexp.MustCompile(`round trips to PostgreSQL: (\d+) \(for (\d+) Gets\)`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "the round trips are printed")
	trips, _ := strconv.Atoi(m[1])
	assert.Equal(t, strconv.Itoa(products), m[2])
	assert.Less(t, trips, products/10, "the Gets travel as pipelines, not one round trip each")

	// what the program wrote: a score per product, price over the average price, so they
	// average 1
	e, err := asyncengine.New(url)
	require.NoError(t, err)
	defer e.Close()
	r, err := e.Query(enginetest.Context(t), "SELECT count(*), avg(score), count(DISTINCT product_id) FROM fanout_scores")
	require.NoError(t, err)
	var n, distinct int64
	var avg float64
	require.NoError(t, r.One(&n, &avg, &distinct))
	assert.EqualValues(t, products, n)
	assert.EqualValues(t, products, distinct)
	assert.InDelta(t, 1.0, avg, 1e-9)
}
