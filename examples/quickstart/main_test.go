package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { enginetest.Main(m) }

func TestRunsOnSQLite(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), "", &out))
	t.Log(out.String())
}

func TestRunsOnPostgreSQL(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), enginetest.NewDatabase(t), &out))
	t.Log(out.String())
}
