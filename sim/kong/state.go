package kong

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"konductor.dev/sim/kong/store"
)

// ZeroHash is the configuration hash a node reports while it holds no
// configuration.
const ZeroHash = "00000000000000000000000000000000"

// State is an immutable set of entities: what a DB-less node loaded, or
// what a DB-mode node read from the database.
type State struct {
	tables map[string]*table
	count  int
	hash   string
}

type table struct {
	byID map[string]*row
	ids  []string          // sorted: the listing and pagination order
	byKy map[string]string // uniqueName -> id
}

// row is one entity with its encodings.
type row struct {
	e   entity
	enc []byte   // the entity's JSON, encoded once
	sum [16]byte // md5 of that JSON without the timestamps
}

func newTable(n int) *table {
	return &table{byID: make(map[string]*row, n), byKy: make(map[string]string, n)}
}

func (t *table) clone() *table {
	return &table{byID: maps.Clone(t.byID), byKy: maps.Clone(t.byKy), ids: slices.Clone(t.ids)}
}

// set indexes e (replacing the entity with its id, if any) without
// touching ids; buf is scratch space for the encoding.
func (t *table) set(sch *entitySchema, e entity, buf []byte) []byte {
	id := asString(e["id"])
	if old, ok := t.byID[id]; ok {
		if k := uniqueName(sch, old.e); k != "" && t.byKy[k] == id {
			delete(t.byKy, k)
		}
	}
	r := &row{e: e}
	t.byID[id] = r
	if k := uniqueName(sch, e); k != "" {
		t.byKy[k] = id
	}
	start := len(buf)
	var cuts [][2]int
	buf, cuts = appendEntityJSON(buf, e)
	// The digest leaves the timestamps out, so reloading the same
	// configuration keeps the hash.
	h := md5.New()
	last := start
	for _, cut := range cuts {
		h.Write(buf[last:cut[0]])
		last = cut[1]
	}
	h.Write(buf[last:])
	h.Sum(r.sum[:0])
	r.enc = buf[start:len(buf):len(buf)]
	return buf
}

func (t *table) remove(sch *entitySchema, id string) {
	old, ok := t.byID[id]
	if !ok {
		return
	}
	if k := uniqueName(sch, old.e); k != "" && t.byKy[k] == id {
		delete(t.byKy, k)
	}
	delete(t.byID, id)
	if i, found := slices.BinarySearch(t.ids, id); found {
		t.ids = slices.Delete(t.ids, i, i+1)
	}
}

// emptyState holds nothing and hashes to ZeroHash.
func emptyState() *State { return newState(nil) }

// newState indexes entities per collection. It trusts its input to be
// valid (normalized, unique ids and names).
func newState(ents map[string][]entity) *State {
	s := &State{tables: make(map[string]*table, len(collections))}
	size := 0
	for _, list := range ents {
		size += 512 * len(list)
	}
	// One buffer holds every entity's encoding.
	buf := make([]byte, 0, size)
	for _, c := range collections {
		t := newTable(len(ents[c]))
		sch := schemas[c]
		for _, e := range ents[c] {
			buf = t.set(sch, e, buf)
			t.ids = append(t.ids, asString(e["id"]))
		}
		slices.Sort(t.ids)
		s.tables[c] = t
	}
	s.finish()
	return s
}

// with returns a new state: s with puts applied and deletes removed. Only
// the collections touched are copied, so a DB-mode write costs far less
// than rebuilding the whole state.
func (s *State) with(puts []put, deletes []store.Key) *State {
	next := &State{tables: maps.Clone(s.tables)}
	touched := map[string]bool{}
	table := func(c string) *table {
		if !touched[c] {
			touched[c] = true
			next.tables[c] = next.tables[c].clone()
		}
		return next.tables[c]
	}
	for _, k := range deletes {
		if schemas[k.Type] != nil {
			table(k.Type).remove(schemas[k.Type], k.ID)
		}
	}
	var buf []byte
	for _, p := range puts {
		t := table(p.sch.collection)
		id := asString(p.e["id"])
		if _, exists := t.byID[id]; !exists {
			i, _ := slices.BinarySearch(t.ids, id)
			t.ids = slices.Insert(t.ids, i, id)
		}
		buf = t.set(p.sch, p.e, buf[len(buf):])
	}
	next.finish()
	return next
}

// finish counts the entities and computes the hash: 32 hex digits of md5
// over every entity's digest in collection and id order (timestamps
// excluded), ZeroHash when empty.
func (s *State) finish() {
	s.count = 0
	h := md5.New()
	for _, c := range collections {
		t := s.tables[c]
		s.count += len(t.ids)
		h.Write([]byte(c))
		for _, id := range t.ids {
			h.Write(t.byID[id].sum[:])
		}
	}
	if s.count == 0 {
		s.hash = ZeroHash
		return
	}
	s.hash = hex.EncodeToString(h.Sum(nil))
}

// uniqueName is the key a collection is unique on besides the id; it is
// also store.Record.Name.
func uniqueName(s *entitySchema, e entity) string {
	if s.cacheKey != nil {
		return s.cacheKey(e)
	}
	switch s.collection {
	case "ca_certificates":
		return asString(e["cert_digest"])
	case "certificates":
		return ""
	}
	if s.endpointKey != "" {
		return asString(e[s.endpointKey])
	}
	return ""
}

// Hash is the configuration hash (see finish).
func (s *State) Hash() string { return s.hash }

// Empty reports whether the state holds no entity.
func (s *State) Empty() bool { return s.count == 0 }

// Count is the number of entities held.
func (s *State) Count() int { return s.count }

func (s *State) get(coll, id string) entity {
	if r := s.tables[coll].byID[strings.ToLower(id)]; r != nil {
		return r.e
	}
	return nil
}

// byName finds an entity by its unique name (see uniqueName).
func (s *State) byName(coll, name string) entity {
	t := s.tables[coll]
	if id, ok := t.byKy[name]; ok {
		return t.byID[id].e
	}
	return nil
}

// list returns a collection's entities in id order.
func (s *State) list(coll string) []entity {
	t := s.tables[coll]
	out := make([]entity, len(t.ids))
	for i, id := range t.ids {
		out[i] = t.byID[id].e
	}
	return out
}

// entities returns every collection's entities, for building a new State.
func (s *State) entities() map[string][]entity {
	out := make(map[string][]entity, len(collections))
	for _, c := range collections {
		out[c] = s.list(c)
	}
	return out
}

// resolve is a resolver over this state's endpoint keys.
func (s *State) resolve(coll, key string) (string, bool) {
	sch := schemas[coll]
	if sch.endpointKey == "" || sch.cacheKey != nil {
		return "", false
	}
	if e := s.byName(coll, key); e != nil {
		return asString(e["id"]), true
	}
	return "", false
}

// records converts the state into store records.
func (s *State) records() []store.Record {
	out := make([]store.Record, 0, s.count)
	for _, c := range collections {
		for _, e := range s.list(c) {
			out = append(out, toRecord(schemas[c], e))
		}
	}
	return out
}

func toRecord(sch *entitySchema, e entity) store.Record {
	b, _ := appendEntityJSON(nil, e)
	return store.Record{Type: sch.collection, ID: asString(e["id"]), Name: uniqueName(sch, e), Body: b}
}

// encoded returns the stored JSON of an entity of this state.
func (s *State) encoded(coll, id string) []byte { return s.tables[coll].byID[id].enc }

// stateFromRecords rebuilds a State from what a backend returned.
func stateFromRecords(recs []store.Record) (*State, error) {
	ents := make(map[string][]entity, len(collections))
	for _, r := range recs {
		if schemas[r.Type] == nil {
			continue
		}
		var e entity
		if err := json.Unmarshal(r.Body, &e); err != nil {
			return nil, err
		}
		ents[r.Type] = append(ents[r.Type], e)
	}
	return newState(ents), nil
}

// declarative renders the state as a declarative 3.0 document (GET /config):
// flat collections, nulls dropped, references by id.
func (s *State) declarative() map[string]any {
	doc := map[string]any{"_format_version": "3.0", "_transform": false}
	for _, c := range collections {
		list := s.list(c)
		if len(list) == 0 {
			continue
		}
		out := make([]any, len(list))
		for i, e := range list {
			out[i] = dropNulls(e)
		}
		doc[c] = out
	}
	return doc
}

func dropNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if x != nil {
				out[k] = dropNulls(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = dropNulls(x)
		}
		return out
	}
	return v
}
