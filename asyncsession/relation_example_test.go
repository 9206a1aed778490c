package asyncsession_test

import (
	"context"
	"fmt"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/asyncsession"
)

// The author/book/label schema: a one-to-many with its many-to-one back, and a many-to-many
// through an association table.
type Novelist struct {
	ID    int64    `db:"id,pk,default"`
	Name  string   `db:"name"`
	Books []*Novel `rel:"fk=novelist_id,order=title,cascade=delete-orphan"` // selectin by default
}

type Novel struct {
	ID         int64     `db:"id,pk,default"`
	NovelistID int64     `db:"novelist_id,fk=novelist.id"`
	Title      string    `db:"title"`
	Novelist   *Novelist `rel:"fk=novelist_id"` // lazy by default
	Labels     []*Label  `rel:"through=novel_label,fk=novel_id,ref=label_id,order=name"`
}

type Label struct {
	ID   int64  `db:"id,pk,default"`
	Name string `db:"name"`
}

type NovelLabel struct {
	NovelID int64 `db:"novel_id,pk,fk=novel.id"`
	LabelID int64 `db:"label_id,pk,fk=label.id"`
}

func Example_relationships() {
	ctx := context.Background()
	e, _ := asyncengine.New("sqlite://")
	defer e.Close()
	if err := asyncsession.CreateAll(ctx, e, Novelist{}, Novel{}, Label{}, NovelLabel{}); err != nil {
		panic(err)
	}

	// Saving: adding the parent adds its books and their labels; the books receive the
	// novelist's generated key, and the association rows are written, in one Commit.
	s := asyncsession.New(e)
	classic := &Label{Name: "classic"}
	leGuin := &Novelist{Name: "Le Guin", Books: []*Novel{
		{Title: "The Dispossessed", Labels: []*Label{classic, {Name: "utopia"}}},
		{Title: "A Wizard of Earthsea", Labels: []*Label{classic}},
	}}
	_ = s.Add(leGuin, &Novelist{Name: "Lem", Books: []*Novel{{Title: "Solaris"}}})
	if _, err := s.Commit(ctx).Await(ctx); err != nil {
		panic(err)
	}
	fmt.Println("keys handed down:", leGuin.Books[0].NovelistID == leGuin.ID)
	s.Close()

	// selectin: the builder loads every collection with one more query for all the parents.
	s = asyncsession.New(e)
	defer s.Close()
	novelists, err := asyncsession.From[Novelist](s).OrderBy("name").All(ctx).Await(ctx)
	if err != nil {
		panic(err)
	}
	for _, n := range novelists {
		fmt.Println(n.Name, len(n.Books))
	}

	// Lazy: a relationship not loaded is an error value, never an empty field...
	book := novelists[0].Books[1]
	if _, err := asyncsession.Related[[]*Label](s, book, "Labels"); err != nil {
		fmt.Println(err != nil)
	}
	// ...until Load, a future: loads issued together travel as one pipeline.
	var loads []*asyncengine.Future[struct{}]
	for _, b := range novelists[0].Books {
		loads = append(loads, asyncsession.Load(ctx, s, b, "Labels"))
	}
	if _, err := asyncengine.All(ctx, loads...); err != nil {
		panic(err)
	}
	labels, _ := asyncsession.Related[[]*Label](s, book, "Labels")
	fmt.Println(book.Title, len(labels), labels[0].Name)

	// Joined: a many-to-one in the same query (LEFT OUTER JOIN), one object per row's key.
	q := asyncsession.From[Novel](s).Load("Novelist", asyncsession.Joined).Join("Labels").Filter("Labels.name", "classic").OrderBy("title")
	classics, _ := q.All(ctx).Await(ctx)
	for _, b := range classics {
		fmt.Println(b.Title, "by", b.Novelist.Name)
	}

	// Count, Exists and Scalars read without loading objects.
	n, _ := asyncsession.From[Novel](s).Count(ctx).Await(ctx)
	titles, _ := asyncsession.Scalars[string](ctx, asyncsession.From[Novel](s).Filter("novelist_id", []int64{1, 2}).OrderBy("title DESC").Limit(2), "title").Await(ctx)
	fmt.Println(n, titles)

	// Paths: the novelists, their books, then every book's labels — a query per level, each
	// label one object however many books it is on.
	s.Close()
	s = asyncsession.New(e)
	defer s.Close()
	shelves, err := asyncsession.From[Novelist](s).Load("Books.Labels", asyncsession.SelectIn).OrderBy("name").All(ctx).Await(ctx)
	if err != nil {
		panic(err)
	}
	for _, b := range shelves[0].Books {
		fmt.Println(b.Title, len(b.Labels), b.Labels[0].Name)
	}
	fmt.Println("one classic:", shelves[0].Books[0].Labels[0] == shelves[0].Books[1].Labels[0])
	// Output:
	// keys handed down: true
	// Le Guin 2
	// Lem 1
	// true
	// The Dispossessed 2 classic
	// A Wizard of Earthsea by Le Guin
	// The Dispossessed by Le Guin
	// 3 [The Dispossessed Solaris]
	// A Wizard of Earthsea 1 classic
	// The Dispossessed 2 classic
	// one classic: true
}
