package kong

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/btree"

	"konductor.dev/sim/kong/store"
)

// ZeroHash is the configuration hash a node reports while it holds no
// configuration.
const ZeroHash = "00000000000000000000000000000000"

// State is an immutable set of entities: what a DB-less node loaded, or
// what a DB-mode node read from the database.
//
// Its tables are copy-on-write B-trees, so a DB-mode write derives the
// next State (see with) in time proportional to what changed, and the
// configuration hash is kept as an order-independent sum of per-entity
// digests instead of being recomputed over everything.
type State struct {
	tables map[string]*table
	count  int
	hash   string
	// stampAt is the time of the declarative load that made the state:
	// the created_at of the rows that load stamped (see row.restamp).
	stampAt int64
	// cloning serializes with: a B-tree must not be cloned concurrently.
	cloning sync.Mutex
	// upstreams is the proxy's upstreams, made by the first ProxyConfig
	// of this state or of one it derives from (see upstreamsMemo).
	upstreams atomic.Pointer[upstreamsMemo]
}

// inheritUpstreams hands next the proxy upstreams s made, when next
// holds the same upstreams and targets: a load that changed neither
// does not group the targets again.
func (s *State) inheritUpstreams(next *State) {
	if m := s.upstreams.Load(); m != nil && next.tables["upstreams"] == m.upstreams && next.tables["targets"] == m.targets {
		next.upstreams.Store(m)
	}
}

// btreeDegree trades node copying on write against tree depth.
const btreeDegree = 16

type table struct {
	rows *btree.BTreeG[*row] // by id: the listing and pagination order
	// index holds, as (key, id) pairs ordered by key then id, the
	// secondary keys: the unique name ("n\x00"+name), other unique
	// fields ("u\x00"+field+"\x00"+value) and parent references
	// ("f\x00"+field+"\x00"+parentID), so children list in id order.
	index *btree.BTreeG[indexKey]
	sum   digestSum
	// size sums, over the rows, the id's JSON, a colon and enc: the
	// table's share of a POST /config answer, before floating stamps are
	// rendered at the state's load time; floatStamps counts the stamps
	// that float and floatWidth sums the widths of the times they carry
	// in enc (see row.floatingStamps).
	size, floatStamps, floatWidth int
}

// account adds (sign 1) or removes (sign -1) r's share of the sizes.
func (t *table) account(r *row, sign int) {
	t.size += sign * (jsonStringLen(r.id) + 1 + len(r.enc))
	n, width := r.floatingStamps()
	t.floatStamps += sign * n
	t.floatWidth += sign * n * width
}

// encSize is the size of the rows' ids and encodings in a State of load
// time at (see size).
func (t *table) encSize(at int64) int {
	if t.floatStamps == 0 {
		return t.size
	}
	return t.size + t.floatStamps*len(stampText(at)) - t.floatWidth
}

// row is one entity with its encodings. Rows are immutable once in a
// table, so consecutive states (and the declarative reuse cache) share
// them.
type row struct {
	id   string
	e    entity
	enc  []byte   // the entity's JSON, encoded once
	sum  [16]byte // md5 of that JSON without the timestamps
	keys []string // secondary index keys (see indexKeys)
	// stamps are the spans of the created_at and updated_at members in
	// enc, which the digest leaves out.
	stamps  memberSpans
	wire    *wire   // see wireOf
	created float64 // the entity's created_at, which orders routes and targets
	// restamp, when it stamps created_at, marks a row stamped by a
	// declarative load: its created_at (and updated_at, when it stamps
	// that too) is the load time of the State holding it (State.stampAt),
	// while e, enc and created carry restamp.at, the time of the load
	// that made the row. Every load restamps what it stamps, so a later
	// load reuses the row as it is and only reads of it at another load
	// time render the new stamps (see entityAt, appendEnc).
	restamp stampUse
}

// floats reports whether the row's stamps differ at load time at from
// those e and enc carry.
func (r *row) floats(at int64) bool { return r.restamp.created && r.restamp.at != at }

// entityAt returns the row's entity in a State of load time at. A row
// whose stamps float materializes a copy on each call: reads are rare
// next to loads.
func (r *row) entityAt(at int64) entity {
	if !r.floats(at) {
		return r.e
	}
	e := maps.Clone(r.e)
	e["created_at"] = float64(at)
	if r.restamp.updated {
		e["updated_at"] = e["created_at"]
	}
	return e
}

// sameRowAt reports whether old, in a State of load time at, is the row r
// made at that time: the same entity with the same stamps, stamped by the
// load alike. Rows are immutable, so either may then stand for the other.
func sameRowAt(old, r *row, at int64) bool {
	if old.id != r.id || old.restamp.created != r.restamp.created || old.restamp.updated != r.restamp.updated ||
		old.sum != r.sum {
		return false
	}
	return bytes.Equal(old.appendEnc(nil, at), r.appendEnc(nil, at))
}

// createdAt is the row's created_at in a State of load time at.
func (r *row) createdAt(at int64) float64 {
	if r.restamp.created {
		return float64(at)
	}
	return r.created
}

// appendEnc appends the row's JSON in a State of load time at: enc, with
// the stamps that float rendered anew.
func (r *row) appendEnc(out []byte, at int64) []byte {
	if !r.floats(at) {
		return append(out, r.enc...)
	}
	return r.appendEncStamped(out, stampText(at))
}

// appendEncStamped is appendEnc for a row whose stamps float, with
// stamp the JSON of the load time (see stampText).
func (r *row) appendEncStamped(out, stamp []byte) []byte {
	last := 0
	for _, cut := range r.stamps.spans() {
		out = append(out, r.enc[last:cut[0]]...)
		member := r.enc[cut[0]:cut[1]]
		if member[0] == ',' {
			out = append(out, ',')
			member = member[1:]
		}
		if bytes.HasPrefix(member, []byte(`"updated_at"`)) && !r.restamp.updated {
			out = append(out, member...) // given in the document
		} else {
			out = append(out, member[:bytes.IndexByte(member, ':')+1]...)
			out = append(out, stamp...)
		}
		last = cut[1]
	}
	return append(out, r.enc[last:]...)
}

// stampText is the JSON of a load time.
func stampText(at int64) []byte { return appendJSON(nil, float64(at)) }

// floatingStamps is how many of the row's stamp members float, and the
// width of the time they carry in enc.
func (r *row) floatingStamps() (n, width int) {
	if !r.restamp.created {
		return 0, 0
	}
	n = 1
	if r.restamp.updated {
		n = 2
	}
	return n, len(stampText(r.restamp.at))
}

// encLen is len(r.appendEnc(nil, at)).
func (r *row) encLen(at int64) int {
	if !r.floats(at) {
		return len(r.enc)
	}
	n, width := r.floatingStamps()
	return len(r.enc) + n*(len(stampText(at))-width)
}

type indexKey struct{ key, id string }

// digestSum adds md5 digests as 128-bit integers: the sum does not depend
// on the order entities were added in, and removing one subtracts it.
type digestSum struct{ hi, lo uint64 }

func (d *digestSum) add(sum [16]byte) {
	lo, carry := bits.Add64(d.lo, binary.BigEndian.Uint64(sum[8:]), 0)
	d.hi, _ = bits.Add64(d.hi, binary.BigEndian.Uint64(sum[:8]), carry)
	d.lo = lo
}

func (d *digestSum) sub(sum [16]byte) {
	lo, borrow := bits.Sub64(d.lo, binary.BigEndian.Uint64(sum[8:]), 0)
	d.hi, _ = bits.Sub64(d.hi, binary.BigEndian.Uint64(sum[:8]), borrow)
	d.lo = lo
}

func newTable() *table {
	return &table{
		rows:  btree.NewG(btreeDegree, func(a, b *row) bool { return a.id < b.id }),
		index: btree.NewG(btreeDegree, func(a, b indexKey) bool { return a.key < b.key || a.key == b.key && a.id < b.id }),
	}
}

// clone is O(1): the trees copy their nodes lazily as either side changes.
func (t *table) clone() *table {
	return &table{rows: t.rows.Clone(), index: t.index.Clone(), sum: t.sum, size: t.size, floatStamps: t.floatStamps, floatWidth: t.floatWidth}
}

func (t *table) get(id string) *row {
	r, _ := t.rows.Get(&row{id: id})
	return r
}

// indexKeys lists the secondary keys of e (see table.index).
func indexKeys(sch *entitySchema, e entity) []string {
	var keys []string
	if k := uniqueName(sch, e); k != "" {
		keys = append(keys, "n\x00"+k)
	}
	for _, f := range sch.fields {
		switch {
		case f.typ == tForeign:
			if id := foreignID(e, f.name); id != "" {
				keys = append(keys, "f\x00"+f.name+"\x00"+id)
			}
		case f.unique && e[f.name] != nil && !(f.name == sch.endpointKey && sch.cacheKey == nil):
			keys = append(keys, "u\x00"+f.name+"\x00"+asString(e[f.name]))
		}
	}
	return keys
}

// newRow encodes and digests e; buf is scratch space for the encoding,
// returned grown.
func newRow(sch *entitySchema, e entity, buf []byte) (*row, []byte) {
	r := &row{id: asString(e["id"]), e: e, keys: indexKeys(sch, e), wire: wireOf(sch.collection, e)}
	r.created, _ = e["created_at"].(float64)
	start := len(buf)
	buf, r.stamps = appendEntityJSON(buf, e)
	r.enc = buf[start:len(buf):len(buf)]
	r.sum = digestWithoutStamps(r.enc, r.stamps)
	return r, buf
}

// digestWithoutStamps leaves the timestamps out, so reloading the same
// configuration keeps the hash.
func digestWithoutStamps(enc []byte, stamps memberSpans) [16]byte {
	h := md5.New()
	last := 0
	for _, cut := range stamps.spans() {
		h.Write(enc[last:cut[0]])
		last = cut[1]
	}
	h.Write(enc[last:])
	var sum [16]byte
	h.Sum(sum[:0])
	return sum
}

// set indexes e, replacing the entity with its id if any; buf is scratch
// space for the encoding.
func (t *table) set(sch *entitySchema, e entity, buf []byte) []byte {
	r, buf := newRow(sch, e, buf)
	if old := t.get(r.id); old != nil {
		t.replaceRow(old, r)
	} else {
		t.insertRow(r)
	}
	return buf
}

// insertRow adds r, whose id the table does not hold.
func (t *table) insertRow(r *row) {
	t.rows.ReplaceOrInsert(r)
	for _, k := range r.keys {
		t.index.ReplaceOrInsert(indexKey{k, r.id})
	}
	t.sum.add(r.sum)
	t.account(r, 1)
}

// replaceRow puts r in the place of old, a row with the same id.
func (t *table) replaceRow(old, r *row) {
	t.rows.ReplaceOrInsert(r)
	if !slices.Equal(old.keys, r.keys) {
		for _, k := range old.keys {
			t.index.Delete(indexKey{k, old.id})
		}
		for _, k := range r.keys {
			t.index.ReplaceOrInsert(indexKey{k, r.id})
		}
	}
	t.sum.sub(old.sum)
	t.sum.add(r.sum)
	t.account(old, -1)
	t.account(r, 1)
}

func (t *table) removeRow(old *row) {
	t.rows.Delete(old)
	for _, k := range old.keys {
		t.index.Delete(indexKey{k, old.id})
	}
	t.sum.sub(old.sum)
	t.account(old, -1)
}

func (t *table) remove(sch *entitySchema, id string) {
	if old := t.get(id); old != nil {
		t.removeRow(old)
	}
}

// lookupKey returns the id of the first entity holding secondary key k.
func (t *table) lookupKey(k string) (string, bool) {
	id, found := "", false
	t.index.AscendGreaterOrEqual(indexKey{key: k}, func(x indexKey) bool {
		id, found = x.id, x.key == k
		return false
	})
	return id, found
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
		t := newTable()
		sch := schemas[c]
		for _, e := range ents[c] {
			buf = t.set(sch, e, buf)
		}
		s.tables[c] = t
	}
	s.finish()
	return s
}

// with returns a new state: s with puts applied and deletes removed. The
// touched tables are cloned copy-on-write, so a DB-mode write costs what
// it changes, not the size of the configuration.
func (s *State) with(puts []put, deletes []store.Key) *State {
	s.cloning.Lock()
	defer s.cloning.Unlock()
	next := &State{tables: maps.Clone(s.tables), stampAt: s.stampAt}
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
		buf = table(p.sch.collection).set(p.sch, p.e, buf[len(buf):])
	}
	next.finish()
	s.inheritUpstreams(next)
	return next
}

// derive returns the state holding exactly rows (per collection, unique
// ids) at load time stampAt, built from s by applying the differences: a
// row already in s (the same pointer) costs a look-up, a changed one a
// replacement, and rows of s absent from rows are removed. The result is
// the same as indexing rows from scratch, since tables are sets ordered by
// id and the hash is a sum. When fresh is not nil, it lists per collection
// the rows of rows that may not be in s: the others are known to be, and
// are not looked up.
func (s *State) derive(rows, fresh map[string][]*row, stampAt int64) *State {
	s.cloning.Lock()
	defer s.cloning.Unlock()
	next := &State{tables: make(map[string]*table, len(collections)), stampAt: stampAt}
	for _, c := range collections {
		prev := s.tables[c]
		list := rows[c]
		if prev.rows.Len() == 0 && len(list) == 0 {
			next.tables[c] = prev
			continue
		}
		changes := list
		if fresh != nil {
			changes = fresh[c]
		}
		if len(changes) == 0 && prev.rows.Len() == len(list) {
			next.tables[c] = prev // every row known to be there
			continue
		}
		t := prev.clone()
		key := &row{} // one search key for the whole table
		changed := false
		for _, r := range changes {
			key.id = r.id
			old, _ := t.rows.Get(key)
			switch {
			case old == nil:
				t.insertRow(r)
				changed = true
			case old != r:
				t.replaceRow(old, r)
				changed = true
			}
		}
		// Every row of list is in t now; t holds more when rows of prev
		// are gone.
		if t.rows.Len() > len(list) {
			present := make(map[string]bool, len(list))
			for _, r := range list {
				present[r.id] = true
			}
			prev.rows.Ascend(func(old *row) bool {
				if !present[old.id] {
					t.removeRow(old)
				}
				return true
			})
			changed = true
		}
		if !changed {
			t = prev // the same rows: the same table, which the proxy upstreams memo recognizes
		}
		next.tables[c] = t
	}
	next.finish()
	s.inheritUpstreams(next)
	return next
}

// finish counts the entities and computes the hash: 32 hex digits of md5
// over each collection's name, size and digest sum (timestamps excluded),
// ZeroHash when empty. It costs the number of collections.
func (s *State) finish() {
	s.count = 0
	h := md5.New()
	var b [24]byte
	for _, c := range collections {
		t := s.tables[c]
		n := t.rows.Len()
		s.count += n
		h.Write([]byte(c))
		binary.BigEndian.PutUint64(b[:8], uint64(n))
		binary.BigEndian.PutUint64(b[8:16], t.sum.hi)
		binary.BigEndian.PutUint64(b[16:], t.sum.lo)
		h.Write(b[:])
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
	if r := s.tables[coll].get(strings.ToLower(id)); r != nil {
		return r.entityAt(s.stampAt)
	}
	return nil
}

// byName finds an entity by its unique name (see uniqueName).
func (s *State) byName(coll, name string) entity {
	t := s.tables[coll]
	if id, ok := t.lookupKey("n\x00" + name); ok {
		return t.get(id).entityAt(s.stampAt)
	}
	return nil
}

// byUnique finds an entity by the value of a unique field other than the
// endpoint key.
func (s *State) byUnique(coll, field, value string) entity {
	t := s.tables[coll]
	if id, ok := t.lookupKey("u\x00" + field + "\x00" + value); ok {
		return t.get(id).entityAt(s.stampAt)
	}
	return nil
}

// rowsOf returns a collection's rows in id order.
func (s *State) rowsOf(coll string) []*row {
	t := s.tables[coll]
	out := make([]*row, 0, t.rows.Len())
	t.rows.Ascend(func(r *row) bool {
		out = append(out, r)
		return true
	})
	return out
}

// list returns a collection's entities in id order.
func (s *State) list(coll string) []entity {
	t := s.tables[coll]
	out := make([]entity, 0, t.rows.Len())
	t.rows.Ascend(func(r *row) bool {
		out = append(out, r.entityAt(s.stampAt))
		return true
	})
	return out
}

// scan calls visit, in id order, on the entities of coll with an id after
// after ("" for all) and, when sc is set, within sc, until visit returns
// false. Scoped scans walk only the parent's children.
func (s *State) scan(coll string, sc *scope, after string, visit func(entity) bool) {
	t := s.tables[coll]
	if sc == nil {
		t.rows.AscendGreaterOrEqual(&row{id: after}, func(r *row) bool {
			return r.id == after || visit(r.entityAt(s.stampAt))
		})
		return
	}
	prefix := "f\x00" + sc.field + "\x00" + sc.parentID
	t.index.AscendGreaterOrEqual(indexKey{prefix, after}, func(k indexKey) bool {
		if k.key != prefix {
			return false
		}
		return k.id == after || visit(t.get(k.id).entityAt(s.stampAt))
	})
}

// childrenOf lists, in id order, the entities of coll whose foreign field
// references parentID.
func (s *State) childrenOf(coll, field, parentID string) []entity {
	var out []entity
	s.scan(coll, &scope{field: field, parentID: parentID}, "", func(e entity) bool {
		out = append(out, e)
		return true
	})
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
func (s *State) encoded(coll, id string) []byte {
	r := s.tables[coll].get(id)
	if !r.floats(s.stampAt) {
		return r.enc
	}
	return r.appendEnc(nil, s.stampAt)
}

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
