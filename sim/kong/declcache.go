package kong

import (
	"encoding/json"
)

// declCache keeps, from a node's last accepted declarative load, the
// outcome of every top-level collection element, keyed by the element's
// exact bytes. A controller resends its whole configuration for every
// change, so the next load finds almost every element unchanged and skips
// decoding, validating and encoding it; the whole document is still
// validated together (references, uniqueness, ids), and the state is
// derived from the previous one by its differences.
//
// A reused outcome is exact, not approximate: an element's entities are a
// function of its bytes, its parents' ids, the answers of the by-name
// references it made, the duplicate numbering of its ids and the load
// time, and each of these is checked (or recomputed) before reuse.
//
// A declCache is immutable once built, but for the index element makes
// on demand; a nil one is empty. A node's loads run one at a time, and so
// do their uses of its cache.
type declCache struct {
	// seq lists, per collection, the outcomes of the load's elements in
	// document order.
	seq map[string][]*cachedElement
	// byColl indexes seq by the elements' bytes, per collection, once
	// element needs it (see misses).
	byColl map[string]map[string]*cachedElement
	// misses counts the look-ups that found no element at their index.
	misses int
	// noTransform records the load's "_transform: false": elements'
	// outcomes depend on it (basic-auth passwords are hashed or not).
	noTransform bool
	// state is the state the load made: its rows are those of the
	// cached items.
	state *State
	// scratch is handed from load to load (see declScratch).
	scratch *declScratch
}

// cachedElement is the outcome of one top-level element: the element and
// the children nested in it, in document order.
type cachedElement struct {
	key   string // the element's bytes
	items []cachedItem
}

// cachedItem is one valid entity of an element and what it depended on.
type cachedItem struct {
	coll, parentField string
	parent            int   // index of the parent in the element's items, -1 for none
	subPath           []any // position below [collection, index]
	parentID          string
	lookups           []resolvedRef
	idKey             string
	literalID         bool
	id                string
	ent               entity
	row               *row
	stamp             stampUse
	facts             *entityFacts
}

// resolvedRef is one by-name reference a normalization resolved.
type resolvedRef struct {
	coll, key, id string
	ok            bool
}

func lookupsHold(refs []resolvedRef, resolve resolver) bool {
	for _, r := range refs {
		if id, ok := resolve(r.coll, r.key); id != r.id || ok != r.ok {
			return false
		}
	}
	return true
}

func decodeJSON(b []byte, v *any) bool { return json.Unmarshal(b, v) == nil }

// element returns the outcome cached for the element at index i of
// coll's array, or nil. It tries first the element the previous load had
// at that index: a document resent with a few changes has nearly every
// element where it was, and comparing bytes costs less than hashing them.
// The few others are looked for in the whole array, and only when there
// are many is the array indexed by bytes: indexing thousands of elements
// costs more than the handful of changed ones a load usually brings.
func (c *declCache) element(coll string, i int, raw []byte) *cachedElement {
	if c == nil {
		return nil
	}
	seq := c.seq[coll]
	if i < len(seq) && seq[i].key == string(raw) {
		return seq[i]
	}
	if c.misses++; c.misses <= scannedMisses {
		// Of elements with the same bytes any is a valid template
		// (see normalize).
		for _, ce := range seq {
			if ce.key == string(raw) {
				return ce
			}
		}
		return nil
	}
	if c.byColl == nil {
		c.byColl = make(map[string]map[string]*cachedElement, len(c.seq))
	}
	m := c.byColl[coll]
	if m == nil {
		m = make(map[string]*cachedElement, len(seq))
		for _, ce := range seq {
			m[ce.key] = ce
		}
		c.byColl[coll] = m
	}
	return m[string(raw)]
}

// scannedMisses is how many elements a load looks for by scanning before
// the cache indexes them.
const scannedMisses = 16

// load parses and validates a declarative document, reusing what it can
// from c, and derives the resulting state from prev (the state c's load
// produced, or any other: rows are compared, not assumed). It returns the
// cache for the next load; on error prev and c stay as they are.
func (c *declCache) load(body []byte, createdAt int64, prev *State, flavor string) (*State, *declCache, error) {
	if members, ok := splitDocument(body, c); ok {
		l := newDeclLoad(createdAt, flavor)
		if c != nil {
			l.scratch = c.scratch
			c.scratch.lists(l)
			defer c.scratch.release() // once the next cache is made
			defer c.scratch.keepLists(l)
		}
		if l.collect(members, c) {
			st, err := l.finish(prev)
			if err != nil {
				return nil, nil, err
			}
			next := l.cache()
			next.state = st
			return st, next, nil
		}
	}
	// YAML, the wrapped form, or a document the splitter leaves to the
	// full decoder: decode it whole, without reuse.
	doc, err := decodeDocument(body)
	if err != nil {
		return nil, nil, err
	}
	st, err := parseDocument(doc, createdAt, prev, flavor)
	return st, nil, err
}

// instantiate adds the items of a cached element found at index i of
// its collection's array, to be checked against this load in normalize.
func (l *declLoad) instantiate(ce *cachedElement, i int) {
	var made []declItem
	if l.scratch != nil {
		made = l.scratch.items(len(ce.items))
	} else {
		made = make([]declItem, len(ce.items))
	}
	for j := range ce.items {
		t := &ce.items[j]
		it := &made[j]
		*it = declItem{coll: t.coll, parentField: t.parentField, tmpl: t, elem: i, from: ce, fromIndex: j}
		if t.parent >= 0 {
			it.parent = &made[t.parent]
		}
		l.add(it)
	}
}

// rawOf returns the item as the document gives it (without nested
// children). The cache keeps no decoded form of its elements: the
// entities are all a load needs of an unchanged element, and a node keeps
// thousands of them. An item taken from the cache whose element must be
// looked at again (its template does not hold, or it is reported invalid)
// decodes the element's bytes anew, once per load.
func (l *declLoad) rawOf(it *declItem) map[string]any {
	if it.raw != nil || it.from == nil {
		return it.raw
	}
	if l.decoded == nil {
		l.decoded = map[*cachedElement][]*declItem{}
	}
	items, ok := l.decoded[it.from]
	if !ok {
		var v any
		if decodeJSON([]byte(it.from.key), &v) {
			// Walked as collect walks it, the element yields its items
			// in the order the cache lists them.
			walk := &declLoad{items: map[string][]*declItem{}}
			walk.collectElement(it.from.items[0].coll, v, nil, nil, "")
			items = walk.order
		}
		l.decoded[it.from] = items
	}
	if it.fromIndex >= len(items) {
		// The bytes were decoded and walked into these items once;
		// they cannot walk differently now.
		panic("kongsim: a cached element no longer decodes to its items")
	}
	it.raw = items[it.fromIndex].raw
	return it.raw
}

// cache returns what the next load may reuse from this (valid) one.
func (l *declLoad) cache() *declCache {
	sizes := map[string]int{}
	for _, el := range l.elements {
		sizes[el.coll]++
	}
	c := &declCache{noTransform: l.noTransform, scratch: l.scratch}
	if c.scratch == nil {
		c.scratch = &declScratch{}
	}
	c.seq = make(map[string][]*cachedElement, len(sizes))
	for coll, n := range sizes {
		c.seq[coll] = make([]*cachedElement, 0, n)
	}
	for _, el := range l.elements {
		if el.from != nil && unchanged(el) {
			c.seq[el.coll] = append(c.seq[el.coll], el.from)
			continue
		}
		ce := &cachedElement{key: string(el.raw), items: make([]cachedItem, len(el.items))}
		c.seq[el.coll] = append(c.seq[el.coll], ce)
		for j, it := range el.items {
			parent, parentID := -1, ""
			if it.parent != nil {
				parentID = it.parent.id
				for k, p := range el.items[:j] {
					if p == it.parent {
						parent = k
					}
				}
			}
			ce.items[j] = cachedItem{
				coll: it.coll, parentField: it.parentField, parent: parent, subPath: it.position()[2:],
				parentID: parentID, lookups: it.lookups, idKey: it.idKey, literalID: it.literalID,
				id: it.id, ent: it.ent, row: it.row, stamp: it.stamp, facts: it.facts,
			}
		}
	}
	return c
}

// unchanged reports whether an element's items all took their cached
// outcome as it was.
func unchanged(el loadedElement) bool {
	for _, it := range el.items {
		if it.tmpl == nil || it.row != it.tmpl.row {
			return false
		}
	}
	return true
}
