package asyncsession_test

import (
	"context"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
)

type User struct {
	ID   int64  `db:"id,pk,default"`
	Name string `db:"name"`
}

func Example() {
	ctx := context.Background()
	e, _ := asyncengine.New("sqlite://")
	defer e.Close()
	if err := asyncsession.CreateAll(ctx, e, User{}); err != nil {
		panic(err)
	}
	s := asyncsession.New(e)
	defer s.Close()

	ada := &User{Name: "ada"}
	_ = s.Add(ada, &User{Name: "grace"})
	if _, err := s.Commit(ctx).Await(ctx); err != nil { // one round trip: BEGIN, INSERT, COMMIT
		panic(err)
	}
	fmt.Println("generated key:", ada.ID, "expired after commit:", s.IsExpired(ada))

	// Futures issued together are served together; the loaded object keeps its pointer.
	f1 := asyncsession.Get[User](ctx, s, 1)
	f2 := asyncsession.Get[User](ctx, s, 2)
	users, _ := asyncengine.All(ctx, f1, f2)
	fmt.Println(users[0] == ada, users[1].Name)
	// Output:
	// generated key: 1 expired after commit: true
	// true grace
}

func ExampleMaker_Begin() {
	ctx := context.Background()
	e, _ := asyncengine.New("sqlite://")
	defer e.Close()
	_ = asyncsession.CreateAll(ctx, e, User{})
	maker := asyncsession.NewMaker(e)

	err := maker.Begin(ctx, func(s *asyncsession.Session) error {
		return s.Add(&User{Name: "committed"})
	})
	fmt.Println(err)
	err = maker.Begin(ctx, func(s *asyncsession.Session) error {
		if err := s.Add(&User{Name: "rolled back"}); err != nil {
			return err
		}
		if _, err := s.Flush(ctx).Await(ctx); err != nil { // sent, then rolled back
			return err
		}
		return fmt.Errorf("changed my mind")
	})
	fmt.Println(err)
	r, _ := e.Query(ctx, "SELECT count(*) FROM user")
	n, _ := r.Scalar()
	fmt.Println(n)
	// Output:
	// <nil>
	// changed my mind
	// 1
}

func ExampleUpsert() {
	ctx := context.Background()
	e, _ := asyncengine.New("sqlite://")
	defer e.Close()
	_ = asyncsession.CreateAll(ctx, e, User{})
	s := asyncsession.New(e)
	defer s.Close()
	_ = s.Add(&User{ID: 1, Name: "old"})
	loaded, _ := asyncsession.Get[User](ctx, s, 1).Await(ctx)

	rows, err := asyncsession.Upsert(ctx, s, []*User{{ID: 1, Name: "new"}, {ID: 2, Name: "added"}}).Await(ctx)
	fmt.Println(err, rows[0] == loaded, loaded.Name, rows[1].Name)
	// Output: <nil> true new added
}
