package asyncsession

import (
	"strings"
	"sync"

	"github.com/gosqla/gosqla/asyncengine"
	"github.com/gosqla/gosqla/internal/structmap"
)

// A Flush or Commit of many new objects — a graph of authors and their books — is planned in
// parts of chunkRoots objects added (with what they reach), and each part leaves for the server
// as soon as it is planned, in the same pipeline and transaction as the rest: the server writes
// one part while the session walks and plans the next, where a flush planned whole would keep
// the server waiting for all of it. The parts are independent by construction (chunkable):
// every object of one part is reached from its own roots only, and no column refers by value to
// a row another part writes, so that the order of the statements between parts cannot matter.
// Anything else is planned whole, as before.

// chunkRoots is how many of the added objects the first part plans; each part after plans
// twice as many as the one before, the server being busy with those before it.
var chunkRoots = 100

// chunking is a request whose flush is sent by parts (see nextChunk).
type chunking struct {
	o      *op
	rest   []*instance // the added objects the parts after the last one planned plan
	roots  int         // the added objects the part planned last
	part   int32       // the number of the part planned last, from 1
	offset int         // the statements in the pipeline so far
	// err is the failure to plan a part after the first: the flush fails with it once the
	// pipeline is read, as it would with a statement of it, and the transaction with the parts
	// before
	err error
}

// mayChunk reports whether o's flush may go by parts: an explicit Flush or Commit, first in its
// round, of a session on one PostgreSQL engine that holds nothing but the objects added since,
// enough of them, all of one model whose relationships form a tree (chunkable). Called locked.
func (s *Session) mayChunk(o *op, planned int) bool {
	if o.flush != flushAll || planned > 0 || len(o.stmts) > 0 || o.build != nil || o.run != nil {
		return false
	}
	if len(s.pending) <= 2*chunkRoots || len(s.deleted) > 0 || s.objects.len() != len(s.pending) {
		return false
	}
	if s.opts.shards != nil || len(s.opts.binds) > 0 || s.opts.engine.Dialect().Name() != "postgresql" {
		return false
	}
	m := s.pending[0].model
	for _, in := range s.pending {
		if in.model != m || in.state != statePending {
			return false
		}
	}
	return chunkable(m)
}

var chunkableCache sync.Map // reflect.Type → bool

// chunkable reports whether every graph of new objects rooted at an m is independent of every
// other one: from m, one-to-many and one-to-one relationships reach each model once (a tree),
// the only many-to-one of a model reached is the back-reference of the relationship that
// reached it, and no column of the tree refers to a table of the tree but the foreign key its
// parent fills (the walk sets it from the parent, whatever it held).
func chunkable(m *structmap.Model) bool {
	if v, ok := chunkableCache.Load(m.Type); ok {
		return v.(bool)
	}
	ok := treeOfModels(m)
	chunkableCache.Store(m.Type, ok)
	return ok
}

func treeOfModels(root *structmap.Model) bool {
	via := map[*structmap.Model]*relation{root: nil} // the relationship each model is reached by
	// by name without schema: a foreign key may name its table with one (public.books), or
	// without; two tables of one name in two schemas count as one, which only keeps a graph whole
	tables := map[string]bool{unqualified(root.Table): true}
	queue := []*structmap.Model{root}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		rels, err := relationsOf(m)
		if err != nil {
			return false
		}
		for _, r := range rels {
			switch r.kind {
			case oneToMany, oneToOne:
				if _, seen := via[r.target]; seen {
					return false // reached twice, or a cycle
				}
				via[r.target] = r
				tables[unqualified(r.target.Table)] = true
				queue = append(queue, r.target)
			case manyToOne:
				if p := via[m]; p == nil || r.target != p.owner || r.fk != p.fk {
					return false
				}
			default:
				return false
			}
		}
	}
	for m, r := range via {
		for _, f := range m.Fields {
			if f.FK == "" {
				continue
			}
			dot := strings.LastIndexByte(f.FK, '.')
			if dot < 0 || !tables[unqualified(f.FK[:dot])] {
				continue // a table the flush does not write
			}
			if r == nil || f != r.fk {
				return false
			}
		}
	}
	return true
}

// startChunks readies the session for a flush by parts: the pending objects are those of the
// first part, and the others are returned, for the parts after it. Called locked.
func (s *Session) startChunks() []*instance {
	// room for the whole graph at once: a map grown part by part would be rehashed as often
	s.objects.grow(len(s.pending) + childrenOf(s.pending))
	s.part = 1
	rest := append([]*instance(nil), s.pending[chunkRoots:]...)
	s.pending = append([]*instance(nil), s.pending[:chunkRoots]...)
	return rest
}

// stopChunks ends a flush by parts: the added objects no part planned are pending again, before
// any added since. Called locked.
func (s *Session) stopChunks() {
	if c := s.chunking; c != nil {
		s.pending = append(c.rest, s.pending...)
		s.chunking = nil
	}
}

// nextChunk plans the next part of the chunked request's flush and appends it to parts,
// returning its statements; once no object is left, the request's end (its COMMIT); nothing
// once the request is planned to its end or stopped. A part whose flush needs another stage
// (a key no part has yet) ends the stream: the request is planned again in the next round, as a
// flush in stages is. A part that cannot be planned ends it too, and fails the flush once the
// pipeline is read (chunking.err). Called by the pipeline, unlocked.
func (s *Session) nextChunk(parts *[]part) []asyncengine.Statement {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chunking
	if c == nil {
		return nil
	}
	o := c.o
	from := len(*parts)
	if len(c.rest) > 0 {
		// the part plans the added objects it takes, whatever else was added since the flush
		// began (by another goroutine): those wait for the next flush
		c.roots *= 2
		n := min(c.roots, len(c.rest))
		since := s.pending
		s.pending = append([]*instance(nil), c.rest[:n]...)
		c.rest = c.rest[n:]
		c.part++
		s.part = c.part
		defer func() { s.part = 0 }() // also when planning panics
		fparts, more, err := s.planFlush(false, reads{})
		s.pending = append(s.pending, since...)
		if err != nil {
			c.err = err
			s.stopChunks()
			return nil
		}
		for _, p := range fparts {
			p.by = o
			*parts = s.add(*parts, p)
		}
		if more {
			s.stopChunks() // o.again: the next round plans the rest
		}
	} else {
		s.chunking = nil
		var again bool
		var err error
		if *parts, again, err = s.planEnd(*parts, o); err != nil {
			c.err = err
			return nil
		}
		if !again {
			o.again, o.streamed = false, true
		}
	}
	var stmts []asyncengine.Statement
	for k := from; k < len(*parts); k++ {
		p := &(*parts)[k]
		p.offset = c.offset
		c.offset += len(p.stmts)
		stmts = append(stmts, p.stmts...)
	}
	return stmts
}

// unqualified is a table's name without its schema.
func unqualified(table string) string {
	return table[strings.LastIndexByte(table, '.')+1:]
}
