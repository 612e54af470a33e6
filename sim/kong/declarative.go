package kong

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"sigs.k8s.io/yaml"
)

// DeclarativeError is why a declarative configuration was refused. Its
// fields mirror the body of Kong's 400 response to POST /config.
type DeclarativeError struct {
	Message   string
	Fields    map[string]any
	Flattened []FlattenedError
}

func (e *DeclarativeError) Error() string { return e.Message }

// FlattenedError is one entry of flattened_errors.
type FlattenedError struct {
	EntityType string         `json:"entity_type"`
	EntityName string         `json:"entity_name,omitempty"`
	EntityID   string         `json:"entity_id,omitempty"`
	EntityTags []string       `json:"entity_tags"`
	Entity     map[string]any `json:"entity"`
	Errors     []FieldError   `json:"errors"`
}

// FieldError is one problem of a flattened error: type "field" names the
// field (dotted, 1-based for array elements), type "entity" has none.
type FieldError struct {
	Type    string `json:"type"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// idNamespace seeds the deterministic ids of entities declared without one.
var idNamespace = uuid.MustParse("6f2c1a5e-8d0b-4f4e-9b57-6b6f6e677369")

// nesting lists, per collection, the child arrays it may carry and the
// foreign field those children get pointed at their parent through.
var nesting = map[string][]struct{ key, coll, field string }{
	"services": {{"routes", "routes", "service"}, {"plugins", "plugins", "service"}},
	"routes":   {{"plugins", "plugins", "route"}},
	"consumers": {{"plugins", "plugins", "consumer"},
		{"keyauth_credentials", "keyauth_credentials", "consumer"},
		{"basicauth_credentials", "basicauth_credentials", "consumer"},
		{"acls", "acls", "consumer"},
		{"jwt_secrets", "jwt_secrets", "consumer"},
		{"hmacauth_credentials", "hmacauth_credentials", "consumer"}},
	"upstreams":    {{"targets", "targets", "upstream"}},
	"certificates": {{"snis", "snis", "certificate"}},
}

type declItem struct {
	coll string
	raw  map[string]any // as given, without nested children
	// path is the position in the document, for "fields"; nil for an
	// item instantiated from the cache, whose position is elem and its
	// template's subPath (see position).
	path        []any
	elem        int
	parent      *declItem
	parentField string
	id          string
	ent         entity
	errs        errTree
	preErrs     errTree // found while collecting: not a record, bad children

	// tmpl is this item's outcome in the previous load, when its element
	// came unchanged (see declCache); from is that element and fromIndex
	// the item's place in it. Such an item's raw is nil until rawOf.
	tmpl      *cachedItem
	from      *cachedElement
	fromIndex int
	// What normalization depended on besides raw, kept for the next load.
	lookups   []resolvedRef // references resolved by endpoint key
	idKey     string        // see idKeyOf
	literalID bool
	stamp     stampUse
	facts     *entityFacts
	row       *row // the encoded entity, once valid
	// indexed is set once the item passed the first pass of finish: its
	// id is declared.
	indexed bool
}

// position is the item's place in the document: [collection, index]
// then the steps below its top-level element.
func (it *declItem) position() []any {
	if it.path != nil || it.tmpl == nil {
		return it.path
	}
	top := it
	for top.parent != nil {
		top = top.parent
	}
	return append([]any{top.coll, it.elem}, it.tmpl.subPath...)
}

// entityFacts are what validation reads from a valid entity besides its id
// and timestamps, so a reused entity brings them along.
type entityFacts struct {
	uniq []string // see uniqueKeys
	refs []string // foreign ids, parallel to the schema's foreignFields
	name string   // the endpoint key's value when it names the entity
}

func factsOf(sch *entitySchema, e entity) *entityFacts {
	f := &entityFacts{uniq: uniqueKeys(sch, e)}
	for _, ff := range sch.foreignFields() {
		f.refs = append(f.refs, foreignID(e, ff.name))
	}
	if sch.endpointKey != "" && sch.cacheKey == nil {
		f.name = asString(e[sch.endpointKey])
	}
	return f
}

// stampUse records which timestamps a load stamped into an entity, and
// with what time: those must be stamped again by a later load.
type stampUse struct {
	created bool  // created_at was absent and got the load time
	updated bool  // updated_at was absent and copies created_at
	at      int64 // the load time used
}

// decodeDocument turns a JSON or YAML text into a document object,
// unwrapping Kong's {"config": "<text>"} form.
func decodeDocument(body []byte) (map[string]any, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, &DeclarativeError{Message: "expected a declarative configuration"}
	}
	var doc any
	// JSON is YAML too, but decoding it directly is much faster.
	if body[0] != '{' || json.Unmarshal(body, &doc) != nil {
		js, yerr := yaml.YAMLToJSON(body)
		if yerr != nil {
			return nil, parseError(yerr.Error())
		}
		if err := json.Unmarshal(js, &doc); err != nil {
			return nil, parseError(err.Error())
		}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		if doc == nil {
			return nil, &DeclarativeError{Message: "expected a declarative configuration"}
		}
		return nil, parseError("expected an object")
	}
	if text, ok := m["config"].(string); ok && m["_format_version"] == nil {
		return decodeDocument([]byte(text))
	}
	return m, nil
}

// parseError reports a document that is not YAML or JSON at all.
func parseError(why string) *DeclarativeError {
	fields := map[string]any{"error": "failed parsing declarative configuration: " + why}
	return &DeclarativeError{Message: "declarative config is invalid: " + luaString(fields), Fields: fields, Flattened: []FlattenedError{}}
}

// ParseDeclarative validates a declarative configuration (JSON or YAML,
// optionally wrapped as {"config": "<text>"}) and returns the state it
// describes, stamped with createdAt where entities carry no timestamps.
// On error nothing of the document is usable: the error is a
// *DeclarativeError.
func ParseDeclarative(body []byte, createdAt int64) (*State, error) {
	return ParseDeclarativeFlavor(body, createdAt, DefaultRouterFlavor)
}

// ParseDeclarativeFlavor is ParseDeclarative for a node of the given
// router flavor, which decides whether routes may carry expressions.
func ParseDeclarativeFlavor(body []byte, createdAt int64, flavor string) (*State, error) {
	st, _, err := (*declCache)(nil).load(body, createdAt, emptyState(), flavor)
	return st, err
}

// parseDocument validates an already decoded document and derives its
// state from prev.
func parseDocument(doc map[string]any, createdAt int64, prev *State, flavor string) (*State, error) {
	l := newDeclLoad(createdAt, flavor)
	l.collect(decodedMembers(doc), nil)
	return l.finish(prev)
}

// decodedMembers lists a decoded document's members, sorted by key so that
// items are collected in the same order whatever the encoding.
func decodedMembers(doc map[string]any) []docMember {
	out := make([]docMember, 0, len(doc))
	for k, v := range doc {
		out = append(out, docMember{key: k, value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// declLoad is one declarative configuration being validated.
type declLoad struct {
	createdAt int64
	flavor    string // the router flavor, which decides the routes schema
	// boxedStamp is createdAt boxed once: every entity this load stamps
	// shares it instead of boxing its own copy.
	boxedStamp any
	top        errTree
	items      map[string][]*declItem // by collection, in document order
	order      []*declItem            // every item, in document order
	// elements are the top-level collection elements that came as raw
	// bytes, with their items: what the next load may reuse.
	elements []loadedElement
	// buf holds the encodings of the rows this load makes, in chunks.
	buf []byte
	// noTransform is "_transform: false": values are stored as given,
	// without the transformations of a write (basic-auth hashing).
	noTransform bool
	// base is the state the reused cache's load made, nil without one.
	base *State
	// decoded holds the items of the cached elements rawOf decoded.
	decoded map[*cachedElement][]*declItem
	// strings holds the strings met in decoded elements (see interned).
	strings map[string]any
	// scratch holds the validation's maps, reused from load to load.
	scratch *declScratch
}

// declScratch holds the items of the elements a load takes from the
// reuse cache and the maps its validation fills, per collection. A node's
// loads run one at a time, so each clears and reuses those of the previous
// one instead of allocating them anew for thousands of entities; nothing
// keeps an item past its load.
type declScratch struct {
	names map[string]map[string]string    // endpoint key -> id
	ids   map[string]map[string]*declItem // id -> item
	uniq  map[string]map[string]bool      // see uniqueKeys
	seen  map[string]map[string]int       // see numberedID
	slab  []declItem
	used  int // items of slab handed out
	// order, elements and byColl are a load's lists (declLoad's order,
	// elements and items), kept for the next load.
	order    []*declItem
	elements []loadedElement
	byColl   map[string][]*declItem
}

// lists hands l the lists of the previous load, emptied.
func (s *declScratch) lists(l *declLoad) {
	l.order, l.elements = s.order[:0], s.elements[:0]
	if s.byColl == nil {
		s.byColl = map[string][]*declItem{}
	}
	for c, list := range s.byColl {
		s.byColl[c] = list[:0]
	}
	l.items = s.byColl
}

// keepLists takes l's lists back, for the next load.
func (s *declScratch) keepLists(l *declLoad) {
	s.order, s.elements, s.byColl = l.order, l.elements, l.items
}

// items returns n zero items.
func (s *declScratch) items(n int) []declItem {
	if s.used+n > len(s.slab) {
		// The items handed out stay where they are, in the old slab.
		s.slab, s.used = make([]declItem, max(2*len(s.slab), n, 1024)), 0
	}
	made := s.slab[s.used : s.used+n : s.used+n]
	s.used += n
	return made
}

// take returns coll's maps, empty (see release), made for about n
// entities the first time.
func (s *declScratch) take(coll string, n int) (names map[string]string, ids map[string]*declItem, uniq map[string]bool, seen map[string]int) {
	if s.names == nil {
		s.names, s.ids = map[string]map[string]string{}, map[string]map[string]*declItem{}
		s.uniq, s.seen = map[string]map[string]bool{}, map[string]map[string]int{}
	}
	if s.names[coll] == nil {
		s.names[coll], s.ids[coll] = make(map[string]string, n), make(map[string]*declItem, n)
		s.uniq[coll], s.seen[coll] = make(map[string]bool, n), map[string]int{}
	}
	return s.names[coll], s.ids[coll], s.uniq[coll], s.seen[coll]
}

// release empties every map and the slab, so that they keep no item, and
// no entity, alive.
func (s *declScratch) release() {
	clear(s.slab[:s.used])
	s.used = 0
	clear(s.order[:cap(s.order)])
	clear(s.elements[:cap(s.elements)])
	for c, list := range s.byColl {
		clear(list[:cap(list)])
		s.byColl[c] = list[:0]
	}
	for c := range s.names {
		clear(s.names[c])
		clear(s.ids[c])
		clear(s.uniq[c])
		clear(s.seen[c])
	}
}

type loadedElement struct {
	coll  string
	raw   []byte
	from  *cachedElement // the previous load's outcome, nil when decoded
	items []*declItem
}

func newDeclLoad(createdAt int64, flavor string) *declLoad {
	return &declLoad{createdAt: createdAt, flavor: flavor, boxedStamp: float64(createdAt), top: errTree{}, items: map[string][]*declItem{}}
}

// collect checks the top-level members and gathers every collection's
// items. Array elements found in cache are not decoded again. It returns
// false when an element is not valid JSON: the caller then loads the
// document the slow way, which reports it.
func (l *declLoad) collect(members []docMember, cache *declCache) bool {
	var version any
	for _, m := range members {
		if m.key == "_format_version" {
			version = m.value
		}
	}
	for _, m := range members {
		if b, ok := m.value.(bool); ok && m.key == "_transform" {
			l.noTransform = !b
		}
	}
	if cache != nil && cache.noTransform != l.noTransform {
		cache = nil
	}
	if cache != nil {
		l.base = cache.state
	}
	switch v := version.(type) {
	case nil:
		l.top["_format_version"] = "required field missing"
	case string:
		if v != "3.0" {
			l.top["_format_version"] = "expected one of: 3.0"
		}
	default:
		l.top["_format_version"] = "expected a string"
	}
	for _, m := range members {
		switch k := m.key; k {
		case "_format_version", "_comment", "_workspace":
		case "_transform":
			if b, ok := m.value.(bool); !ok {
				l.top[k] = "expected a boolean"
			} else {
				l.noTransform = !b
			}
		default:
			if schemas[k] == nil {
				l.top[k] = "unknown field"
				continue
			}
			if !m.isArray {
				if msg := l.collectItems(k, m.value, []any{k}, nil, ""); msg != "" {
					l.top[k] = msg
				}
				continue
			}
			for i, raw := range m.elems {
				start := len(l.order)
				from := cache.element(k, i, raw)
				if from != nil {
					l.instantiate(from, i)
				} else {
					var v any
					if !decodeJSON(raw, &v) {
						return false
					}
					l.collectElement(k, v, []any{k, i}, nil, "")
				}
				l.elements = append(l.elements, loadedElement{coll: k, raw: raw, from: from, items: l.order[start:len(l.order):len(l.order)]})
			}
		}
	}
	return true
}

// collectItems walks one collection array (and the children nested in its
// entries) into items; it returns a message when v is not an array.
func (l *declLoad) collectItems(coll string, v any, path []any, parent *declItem, parentField string) string {
	arr, ok := v.([]any)
	if !ok {
		if m, isMap := v.(map[string]any); isMap && len(m) == 0 {
			return ""
		}
		return "expected an array"
	}
	for i, raw := range arr {
		l.collectElement(coll, raw, append(append([]any{}, path...), i), parent, parentField)
	}
	return ""
}

// collectElement adds one collection element at path p, then its nested
// children.
func (l *declLoad) collectElement(coll string, raw any, p []any, parent *declItem, parentField string) {
	m, ok := raw.(map[string]any)
	if !ok {
		l.add(&declItem{coll: coll, raw: map[string]any{}, path: p, parent: parent, parentField: parentField,
			preErrs: errTree{"@entity": strs("expected a record")}})
		return
	}
	own := make(map[string]any, len(m))
	var children []struct {
		key, coll, field string
		v                any
	}
	for k, x := range m {
		nested := false
		for _, n := range nesting[coll] {
			if n.key == k {
				// Certificates list their SNIs as plain names too.
				if coll == "certificates" {
					x = sniObjects(x)
				}
				children = append(children, struct {
					key, coll, field string
					v                any
				}{n.key, n.coll, n.field, x})
				nested = true
			}
		}
		if !nested {
			own[k] = l.interned(x)
		}
	}
	it := &declItem{coll: coll, raw: own, path: p, parent: parent, parentField: parentField}
	l.add(it)
	sort.Slice(children, func(a, b int) bool { return children[a].key < children[b].key })
	for _, ch := range children {
		if msg := l.collectItems(ch.coll, ch.v, append(append([]any{}, p...), ch.key), it, ch.field); msg != "" {
			it.preErrs = errTree{ch.key: msg}
		}
	}
}

// interned returns v with its strings, and those of an array of scalars,
// replaced by equal ones the load already holds. A controller's entities
// repeat the same tags, protocols and settings thousands of times; as
// decoded, each is an object of its own that a node keeps for as long as
// it holds the configuration (and the collector scans). The arrays are
// decoded for this load and nothing else holds them.
func (l *declLoad) interned(v any) any {
	switch t := v.(type) {
	case string:
		return l.intern(t, v)
	case []any:
		for i, el := range t {
			if s, ok := el.(string); ok {
				t[i] = l.intern(s, el)
			}
		}
	}
	return v
}

// intern returns the string s (boxed as v) the load met first.
func (l *declLoad) intern(s string, v any) any {
	if len(s) > maxInterned {
		return v
	}
	if l.strings == nil {
		l.strings = map[string]any{}
	}
	if w, ok := l.strings[s]; ok {
		return w
	}
	l.strings[s] = v
	return v
}

// maxInterned bounds the strings interned: tags, names and settings are
// short, certificates and keys are not, and are rarely repeated.
const maxInterned = 128

func (l *declLoad) add(it *declItem) {
	l.items[it.coll] = append(l.items[it.coll], it)
	l.order = append(l.order, it)
}

// finish validates the collected items and, when they are valid, returns
// their state, derived from prev.
func (l *declLoad) finish(prev *State) (*State, error) {
	if len(l.top) > 0 {
		return nil, newDeclarativeError(l.top, nil)
	}
	items := l.items

	// Validate collections parents-first so that children can resolve
	// parents by name and learn generated parent ids.
	sc := l.scratch
	if sc == nil {
		sc = &declScratch{}
	}
	// names maps a collection's endpoint keys to ids, for references
	// by name. It is made on the first such reference: a controller's
	// document nests children in their parents and refers by id, so
	// most loads need none. Foreign fields refer to earlier collections
	// only (see init), so a collection's first-pass outcome is complete
	// when a later one refers to it.
	names := map[string]map[string]string{} // collection -> endpoint key -> id
	done := make(map[string]bool, len(collections))
	resolve := func(coll, key string) (string, bool) {
		m, built := names[coll]
		if !built {
			if !done[coll] {
				return "", false
			}
			m = l.namesOf(coll, sc)
			names[coll] = m
		}
		id, ok := m[key]
		return id, ok
	}
	ids := map[string]map[string]*declItem{}
	var bad []*declItem
	for _, c := range collections {
		sch := schemaOf(l.flavor, c)
		var uniq map[string]bool
		var seen map[string]int
		var idm map[string]*declItem
		_, idm, uniq, seen = sc.take(c, len(items[c]))
		ids[c] = idm
		for _, it := range items[c] {
			l.normalize(it, sch, resolve, seen)
			if it.errs != nil {
				bad = append(bad, it)
				continue
			}
			// One map write both checks and records the id; it is
			// taken back if the entity turns out invalid.
			n := len(idm)
			idm[it.id] = it
			if len(idm) == n {
				it.errs = errTree{"@entity": strs(fmt.Sprintf("uniqueness violation: '%s' entity with primary key set to '%s' already declared", c, it.id))}
				bad = append(bad, it)
				continue
			}
			if it.facts == nil {
				it.facts = factsOf(sch, it.ent)
			}
			if msg := uniquenessViolation(sch, it.ent, it.facts.uniq, uniq); msg != "" {
				delete(idm, it.id)
				it.errs = errTree{"@entity": strs(msg)}
				bad = append(bad, it)
				continue
			}
			it.indexed = true
		}
		done[c] = true
	}
	// References given by id must point into this document.
	for _, c := range collections {
		foreign := schemas[c].foreignFields()
		for _, it := range items[c] {
			if it.errs != nil {
				continue
			}
			for i, f := range foreign {
				ref := it.facts.refs[i]
				if ref == "" {
					continue
				}
				// A nested child's reference to its parent holds
				// when the parent passed the first pass.
				if p := it.parent; p != nil && f.name == it.parentField && f.ref == p.coll && ref == p.id && p.indexed {
					continue
				}
				if ids[f.ref][ref] == nil {
					if it.errs == nil {
						it.errs = errTree{}
					}
					it.errs[f.name] = fmt.Sprintf("could not find %s '%s'", schemas[f.ref].singular, ref)
				}
			}
			if it.errs != nil {
				bad = append(bad, it)
			}
		}
	}
	if len(bad) > 0 {
		for _, it := range bad {
			l.rawOf(it)
		}
		return nil, newDeclarativeError(nil, bad)
	}
	// Many new rows share 64 KiB buffers; a few get their own, so that a
	// row kept through many loads does not keep a mostly dead buffer.
	encode := 0
	for _, it := range l.order {
		if it.row == nil {
			encode++
		}
	}
	// Rows reused from the load that made prev are known to be in it:
	// deriving the new state looks up only the others.
	var fresh map[string][]*row
	if l.base != nil && l.base == prev {
		fresh = make(map[string][]*row, len(collections))
	}
	rows := make(map[string][]*row, len(collections))
	for _, c := range collections {
		sch := schemas[c]
		list := make([]*row, len(items[c]))
		for i, it := range items[c] {
			known := it.tmpl != nil && it.row != nil && it.row == it.tmpl.row
			if it.row == nil {
				if encode < 64 {
					it.row, _ = newRow(sch, it.ent, nil)
				} else {
					if cap(l.buf)-len(l.buf) < 4096 {
						l.buf = make([]byte, 0, 64<<10)
					}
					it.row, l.buf = newRow(sch, it.ent, l.buf)
				}
				if it.stamp.created {
					it.row.restamp = it.stamp
				}
				if encode < 64 {
					// An element that changed mostly brings entities
					// that did not (a service whose route changed):
					// those keep their row, so that the state and the
					// proxy see them unchanged.
					if old := prev.tables[c].get(it.id); old != nil && sameRowAt(old, it.row, l.createdAt) {
						it.row = old
					}
				}
			}
			if fresh != nil && !known {
				fresh[c] = append(fresh[c], it.row)
			}
			list[i] = it.row
		}
		rows[c] = list
	}
	return prev.derive(rows, fresh, l.createdAt), nil
}

// namesOf maps the endpoint keys of coll's items that passed the first
// pass of finish to their ids, in document order, as references by name
// resolve them.
func (l *declLoad) namesOf(coll string, sc *declScratch) map[string]string {
	names, _, _, _ := sc.take(coll, len(l.items[coll]))
	for _, it := range l.items[coll] {
		if it.indexed {
			if k := it.facts.name; k != "" {
				names[k] = it.id
			}
		}
	}
	return names
}

// normalize validates one item, setting its entity (stamped with its id
// and timestamps) or its errors. An item whose element is unchanged since
// the previous load, and whose parent and by-name references resolve as
// they did then, takes that load's entity instead of being validated
// again: normalization is a function of exactly those inputs.
func (l *declLoad) normalize(it *declItem, sch *entitySchema, resolve resolver, seen map[string]int) {
	parentID := ""
	if it.parent != nil {
		parentID = it.parent.id
	}
	t := it.tmpl
	if t != nil && (t.parentID != parentID || !lookupsHold(t.lookups, resolve)) {
		t = nil
	}
	if t != nil {
		it.lookups, it.idKey, it.literalID = t.lookups, t.idKey, t.literalID
		it.id = numberedID(it.coll, it.idKey, it.literalID, seen)
		it.stamp, it.facts = t.stamp, t.facts
		switch {
		case it.id == t.id:
			// The same entity: the same row. What this load stamps
			// is the load time of the State holding the row, so the
			// row needs no restamping (see row.restamp); it.ent keeps
			// the template's stamps, which nothing reads.
			it.ent, it.row = t.ent, t.row
			it.stamp.at = l.createdAt
		default:
			// The same entity under another id.
			it.ent = maps.Clone(t.ent)
			it.ent["id"] = it.id
			for _, f := range sch.fields {
				if f.auto && f.typ == tString && !f.uuid && l.rawOf(it)[f.name] == nil {
					delete(it.ent, f.name)
				}
			}
			fillAutoFields(sch, it.ent, it.id)
			l.stampTimes(it)
		}
		return
	}

	in := l.rawOf(it)
	if it.parent != nil {
		in = make(map[string]any, len(it.raw)+1)
		for k, v := range it.raw {
			in[k] = v
		}
		in[it.parentField] = map[string]any{"id": parentID}
	}
	var lookups []resolvedRef
	record := func(coll, key string) (string, bool) {
		id, ok := resolve(coll, key)
		lookups = append(lookups, resolvedRef{coll: coll, key: key, id: id, ok: ok})
		return id, ok
	}
	it.ent, it.errs = normalizeEntity(sch, in, record)
	it.lookups = lookups
	it.idKey, it.literalID = idKeyOf(it)
	it.id = numberedID(it.coll, it.idKey, it.literalID, seen)
	if it.preErrs != nil {
		if it.errs == nil {
			it.errs = errTree{}
		}
		for k, v := range it.preErrs {
			it.errs[k] = v
		}
	}
	if it.errs != nil {
		return
	}
	it.ent["id"] = it.id
	fillAutoFields(sch, it.ent, it.id)
	if !l.noTransform {
		transformOnWrite(sch, it.ent)
	}
	it.stamp = stampUse{created: it.ent["created_at"] == nil, at: l.createdAt}
	it.stamp.updated = sch.field("updated_at") != nil && it.ent["updated_at"] == nil
	l.stampTimes(it)
}

// stampTimes sets the timestamps it.stamp says this load provides.
func (l *declLoad) stampTimes(it *declItem) {
	it.stamp.at = l.createdAt
	if it.stamp.created {
		it.ent["created_at"] = l.boxedStamp
	}
	if it.stamp.updated {
		it.ent["updated_at"] = it.ent["created_at"]
	}
}

func sniObjects(v any) any {
	arr, ok := v.([]any)
	if !ok {
		return v
	}
	out := make([]any, len(arr))
	for i, x := range arr {
		if s, ok := x.(string); ok {
			out[i] = map[string]any{"name": s}
		} else {
			out[i] = x
		}
	}
	return out
}

// idKeyOf is what an item's id derives from: the id it declares (literal),
// else its natural key, else its content, else (when invalid) its
// position.
func idKeyOf(it *declItem) (key string, literal bool) {
	if s, ok := it.raw["id"].(string); ok && isUUID(s) {
		return strings.ToLower(s), true
	}
	sch := schemas[it.coll]
	if it.ent == nil {
		return "position:" + fmt.Sprint(it.position()...), false
	}
	if key = uniqueName(sch, it.ent); key != "" {
		return key, false
	}
	b, _ := json.Marshal(dropNulls(it.ent))
	sum := sha1.Sum(b)
	return fmt.Sprintf("content:%x", sum), false
}

// numberedID is the entity's own id, or a deterministic one derived from
// its key so that loading the same document twice yields the same ids and
// hash; seen numbers entities sharing a key.
func numberedID(coll, key string, literal bool, seen map[string]int) string {
	if literal {
		return key
	}
	seen[key]++
	if n := seen[key]; n > 1 {
		key += "#" + strconv.Itoa(n)
	}
	return uuid.NewSHA1(idNamespace, []byte(coll+"\x00"+key)).String()
}

// uniqueKeys lists the keys e must hold alone in its collection: one per
// unique field set, then its cache key. They do not depend on the id or
// the timestamps.
func uniqueKeys(sch *entitySchema, e entity) []string {
	var keys []string
	for _, f := range sch.fields {
		if f.unique && e[f.name] != nil {
			keys = append(keys, f.name+"\x00"+asString(e[f.name]))
		}
	}
	if sch.cacheKey != nil {
		keys = append(keys, "\x00cache\x00"+sch.cacheKey(e))
	}
	return keys
}

// uniquenessViolation checks e's unique keys (see uniqueKeys) against those
// already declared, recording them when there is no clash.
func uniquenessViolation(sch *entitySchema, e entity, keys []string, seen map[string]bool) string {
	// Record the keys while checking them, one map write each; on a
	// clash, take back those this entity added.
	added := 0
	for _, k := range keys {
		n := len(seen)
		seen[k] = true
		if len(seen) == n {
			break
		}
		added++
	}
	if added == len(keys) {
		return ""
	}
	for _, k := range keys[:added] {
		delete(seen, k)
	}
	var msgs []string
	i := 0
	for _, f := range sch.fields {
		if f.unique && e[f.name] != nil {
			if seen[keys[i]] {
				msgs = append(msgs, fmt.Sprintf("uniqueness violation: '%s' entity with %s set to '%v' already declared", sch.collection, f.name, e[f.name]))
			}
			i++
		}
	}
	if sch.cacheKey != nil && seen[keys[i]] {
		msgs = append(msgs, fmt.Sprintf("uniqueness violation: '%s' entity with %s already declared", sch.collection, describeCacheKey(sch, e)))
	}
	return strings.Join(msgs, "; ")
}

func describeCacheKey(sch *entitySchema, e entity) string {
	if sch.collection == "targets" {
		return fmt.Sprintf("upstream set to '%s' and target set to '%s'", foreignID(e, "upstream"), asString(e["target"]))
	}
	parts := []string{fmt.Sprintf("name set to '%s'", asString(e["name"]))}
	for _, f := range []string{"route", "service", "consumer"} {
		if id := foreignID(e, f); id != "" {
			parts = append(parts, fmt.Sprintf("%s set to '%s'", f, id))
		}
	}
	return strings.Join(parts, " and ")
}

// newDeclarativeError builds Kong's nested "fields" tree, the flattened
// list and the message from top-level and per-entity errors.
func newDeclarativeError(top errTree, bad []*declItem) *DeclarativeError {
	fields := map[string]any{}
	for k, v := range top {
		fields[k] = v
	}
	flat := []FlattenedError{}
	sort.SliceStable(bad, func(i, j int) bool { return pathLess(bad[i].position(), bad[j].position()) })
	for _, it := range bad {
		fields = setAt(fields, it.position(), it.errs).(map[string]any)
		sch := schemas[it.coll]
		fe := FlattenedError{
			EntityType: sch.singular,
			EntityID:   it.id,
			EntityTags: stringList(it.raw["tags"]),
			Entity:     cloneValue(it.raw).(map[string]any),
			Errors:     flattenErrTree("", it.errs),
		}
		if it.id != "" {
			fe.Entity["id"] = it.id
		}
		// As Kong: a nested child names its parent by primary key, and
		// only a "name" field names the entity.
		if it.parent != nil && fe.Entity[it.parentField] == nil && it.parent.id != "" {
			fe.Entity[it.parentField] = map[string]any{"id": it.parent.id}
		}
		fe.EntityName = asString(it.raw["name"])
		flat = append(flat, fe)
	}
	return &DeclarativeError{
		Message:   "declarative config is invalid: " + luaString(fields),
		Fields:    fields,
		Flattened: flat,
	}
}

func pathLess(a, b []any) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if fmt.Sprint(a[i]) != fmt.Sprint(b[i]) {
			ai, aok := a[i].(int)
			bi, bok := b[i].(int)
			if aok && bok {
				return ai < bi
			}
			return fmt.Sprint(a[i]) < fmt.Sprint(b[i])
		}
	}
	return len(a) < len(b)
}

// setAt places v in node at path, creating objects for string steps and
// arrays (padded with nulls) for index steps, and returns the new node.
func setAt(node any, path []any, v errTree) any {
	if len(path) == 0 {
		return mergeTree(node, v)
	}
	switch step := path[0].(type) {
	case string:
		m, _ := node.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		m[step] = setAt(m[step], path[1:], v)
		return m
	case int:
		a, _ := node.([]any)
		for len(a) <= step {
			a = append(a, nil)
		}
		a[step] = setAt(a[step], path[1:], v)
		return a
	}
	return node
}

func mergeTree(old any, v errTree) any {
	m, ok := old.(map[string]any)
	if !ok {
		out := map[string]any{}
		for k, x := range v {
			out[k] = x
		}
		return out
	}
	for k, x := range v {
		m[k] = x
	}
	return m
}

// flattenErrTree lists an entity's errors with dotted field names.
func flattenErrTree(prefix string, t errTree) []FieldError {
	var out []FieldError
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := t[k]
		if k == "@entity" {
			for _, m := range stringList(v) {
				out = append(out, FieldError{Type: "entity", Message: m})
			}
			continue
		}
		out = append(out, flattenValue(prefix+k, v)...)
	}
	return out
}

func flattenValue(name string, v any) []FieldError {
	switch t := v.(type) {
	case string:
		return []FieldError{{Type: "field", Field: name, Message: t}}
	case map[string]any:
		return flattenErrTree(name+".", t)
	case []any:
		var out []FieldError
		for i, x := range t {
			if x != nil {
				out = append(out, flattenValue(name+"."+strconv.Itoa(i+1), x)...)
			}
		}
		return out
	}
	return nil
}

// luaString renders an error tree the way Kong's messages print Lua
// tables: {name="msg",list={[2]="msg"}}.
func luaString(v any) string {
	switch t := v.(type) {
	case string:
		return strconv.Quote(t)
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			name := k
			if strings.ContainsAny(k, "@-. ") {
				name = "[" + strconv.Quote(k) + "]"
			}
			parts = append(parts, name+"="+luaString(t[k]))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		// A sequence prints bare; a sparse one names its indexes.
		sparse := false
		for _, x := range t {
			sparse = sparse || x == nil
		}
		var parts []string
		for i, x := range t {
			switch {
			case x == nil:
			case sparse:
				parts = append(parts, "["+strconv.Itoa(i+1)+"]="+luaString(x))
			default:
				parts = append(parts, luaString(x))
			}
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return fmt.Sprint(v)
}
