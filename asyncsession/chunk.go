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
	roots  int   // the added objects the part planned last
	part   int32 // the number of the part planned last, from 1
	offset int   // the statements in the pipeline so far
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
	tables := map[string]bool{root.Table: true}
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
				tables[r.target.Table] = true
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
			if dot < 0 || !tables[f.FK[:dot]] {
				continue // a table the flush does not write
			}
			if r == nil || f != r.fk {
				return false
			}
		}
	}
	return true
}

// holdBack keeps the first n pending objects for the part planned next and returns the others.
// Called locked.
func (s *Session) holdBack(n int) []*instance {
	rest := append([]*instance(nil), s.pending[n:]...)
	s.pending = append([]*instance(nil), s.pending[:n]...)
	return rest
}

// startChunks readies the session for a flush by parts, and holds back the objects the parts
// after the first plan. Called locked.
func (s *Session) startChunks() []*instance {
	// room for the whole graph at once: a map grown part by part would be rehashed as often
	s.objects.grow(len(s.pending) + childrenOf(s.pending))
	s.part = 1
	return s.holdBack(chunkRoots)
}

// nextChunk plans the next part of the chunked request's flush and appends it to parts,
// returning its statements; once no object is left, the request's end (its COMMIT); nothing
// once the request is planned to its end or stopped. A part whose flush needs another stage
// (a key no part has yet) ends the stream: the request is planned again in the next round, as a
// flush in stages is. Called by the pipeline, unlocked.
func (s *Session) nextChunk(parts *[]part) []asyncengine.Statement {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.chunking
	if c == nil {
		return nil
	}
	o := c.o
	from := len(*parts)
	if len(s.pending) > 0 {
		c.roots *= 2
		var rest []*instance
		if len(s.pending) > c.roots {
			rest = s.holdBack(c.roots)
		}
		c.part++
		s.part = c.part
		defer func() { s.part = 0 }() // also when planning panics
		fparts, more, err := s.planFlush(false, reads{})
		s.pending = append(s.pending, rest...)
		if err != nil {
			// the parts before went to the server, in the open transaction: the request fails,
			// and the objects not planned stay pending, as for a flush refused before sending
			s.chunking = nil
			o.staleStage = true
			o.reject(err)
			return nil
		}
		for _, p := range fparts {
			p.by = o
			*parts = s.add(*parts, p)
		}
		if more {
			s.chunking = nil // o.again: the next round plans the rest
		}
	} else {
		s.chunking = nil
		var again bool
		var err error
		if *parts, again, err = s.planEnd(*parts, o); err != nil {
			o.staleStage = true
			o.reject(err)
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
