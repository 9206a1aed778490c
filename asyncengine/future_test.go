package asyncengine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFutureAwaitHonoursContext(t *testing.T) {
	f, resolve := asyncengine.NewPromise[int]()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.Await(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	resolve(5, nil)
	resolve(6, errors.New("ignored"))
	v, err := f.Await(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 5, v)
	<-f.Done()
}

func ExampleFuture() {
	ctx := context.Background()
	f, resolve := asyncengine.NewPromise[string]()
	go resolve("done", nil) // whoever finishes the work completes the future, once
	v, err := f.Await(ctx)
	fmt.Println(v, err)
	// Output: done <nil>
}

func ExampleAll() {
	ctx := context.Background()
	futures := []*asyncengine.Future[int]{
		asyncengine.Ready(1, nil),
		asyncengine.Ready(2, nil),
		asyncengine.Ready(3, nil),
	}
	vals, err := asyncengine.All(ctx, futures...)
	fmt.Println(vals, err)

	_, err = asyncengine.All(ctx, asyncengine.Ready(1, nil), asyncengine.Ready(0, errors.New("second failed")))
	fmt.Println(err)
	// Output:
	// [1 2 3] <nil>
	// second failed
}
