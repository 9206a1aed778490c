package asyncengine_test

import (
	"context"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncengine/enginetest"
	"github.com/stretchr/testify/require"
)

// Rows split over two shards by a chooser; a query on all shards runs on both at once; a
// chooser's unknown shard is an error, never a write elsewhere.
func TestShardSet(t *testing.T) {
	t.Parallel()
	ctx := enginetest.Context(t)
	_, err := asyncengine.NewShardSet(nil)
	require.ErrorIs(t, err, asyncengine.ErrInvalidConfig)

	shards := map[string]*asyncengine.Engine{}
	for _, name := range []string{"even", "odd"} {
		e, err := asyncengine.New(enginetest.NewDatabase(t))
		require.NoError(t, err)
		_, err = e.Exec(ctx, "CREATE TABLE item (id int PRIMARY KEY)")
		require.NoError(t, err)
		shards[name] = e
	}
	s, err := asyncengine.NewShardSet(shards)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, []string{"even", "odd"}, s.Names())
	chooser := func(id int) string { return map[int]string{0: "even", 1: "odd"}[id%2] }
	for id := 0; id < 10; id++ {
		e, err := s.Shard(chooser(id))
		require.NoError(t, err)
		_, err = e.Exec(ctx, "INSERT INTO item VALUES ($1)", id)
		require.NoError(t, err)
	}
	_, err = s.Shard(chooser(-1)) // -1 % 2 == -1: the chooser has no shard for it
	require.ErrorIs(t, err, asyncengine.ErrUnknownShard)
	require.Contains(t, err.Error(), `"" (the set holds: even, odd)`)

	res, err := s.QueryAll(ctx, "SELECT count(*), min(id) FROM item")
	require.NoError(t, err)
	var n, lowest int64
	require.NoError(t, res["even"].One(&n, &lowest))
	require.Equal(t, []int64{5, 0}, []int64{n, lowest})
	require.NoError(t, res["odd"].One(&n, &lowest))
	require.Equal(t, []int64{5, 1}, []int64{n, lowest})

	// concurrency, shown without timing: each shard's call waits until the other's has started
	started := map[string]chan struct{}{"even": make(chan struct{}), "odd": make(chan struct{})}
	other := map[string]string{"even": "odd", "odd": "even"}
	_, err = asyncengine.OnShards(ctx, s, nil, func(ctx context.Context, shard string, e *asyncengine.Engine) (struct{}, error) {
		close(started[shard])
		select {
		case <-started[other[shard]]:
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		}
		_, err := e.Exec(ctx, "SELECT 1")
		return struct{}{}, err
	})
	require.NoError(t, err)

	// the first failure names its shard and cancels the rest
	_, err = asyncengine.OnShards(ctx, s, []string{"odd"}, func(ctx context.Context, _ string, e *asyncengine.Engine) (int, error) {
		_, err := e.Exec(ctx, "SELECT 1/0")
		return 0, err
	})
	require.ErrorContains(t, err, `shard "odd"`)
	_, err = asyncengine.OnShards(ctx, s, []string{"even", "nowhere"}, func(context.Context, string, *asyncengine.Engine) (int, error) {
		t.Error("ran although a named shard is unknown")
		return 0, nil
	})
	require.ErrorIs(t, err, asyncengine.ErrUnknownShard)
}
