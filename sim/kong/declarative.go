package kong

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"fmt"
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
	"services":     {{"routes", "routes", "service"}, {"plugins", "plugins", "service"}},
	"routes":       {{"plugins", "plugins", "route"}},
	"consumers":    {{"plugins", "plugins", "consumer"}},
	"upstreams":    {{"targets", "targets", "upstream"}},
	"certificates": {{"snis", "snis", "certificate"}},
}

type declItem struct {
	coll        string
	raw         map[string]any // as given, without nested children
	path        []any          // position in the document, for "fields"
	parent      *declItem
	parentField string
	id          string
	ent         entity
	errs        errTree
	preErrs     errTree // found while collecting: not a record, bad children
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
	doc, err := decodeDocument(body)
	if err != nil {
		return nil, err
	}
	return parseDocument(doc, createdAt)
}

func parseDocument(doc map[string]any, createdAt int64) (*State, error) {
	top := errTree{}
	switch v := doc["_format_version"].(type) {
	case nil:
		top["_format_version"] = "required field missing"
	case string:
		if v != "3.0" {
			top["_format_version"] = "expected one of: 3.0"
		}
	default:
		top["_format_version"] = "expected a string"
	}
	items := map[string][]*declItem{}
	for k, v := range doc {
		switch k {
		case "_format_version", "_comment", "_workspace":
		case "_transform":
			if _, ok := v.(bool); !ok {
				top[k] = "expected a boolean"
			}
		default:
			if schemas[k] == nil {
				top[k] = "unknown field"
				continue
			}
			if msg := collectItems(k, v, []any{k}, nil, "", items); msg != "" {
				top[k] = msg
			}
		}
	}
	if len(top) > 0 {
		return nil, newDeclarativeError(top, nil)
	}

	// Validate collections parents-first so that children can resolve
	// parents by name and learn generated parent ids.
	names := map[string]map[string]string{} // collection -> endpoint key -> id
	resolve := func(coll, key string) (string, bool) {
		id, ok := names[coll][key]
		return id, ok
	}
	ids := map[string]map[string]*declItem{}
	var bad []*declItem
	for _, c := range collections {
		sch := schemas[c]
		names[c] = map[string]string{}
		ids[c] = map[string]*declItem{}
		uniq := map[string]*declItem{}
		seen := map[string]int{}
		for _, it := range items[c] {
			in := it.raw
			if it.parent != nil {
				in = make(map[string]any, len(it.raw)+1)
				for k, v := range it.raw {
					in[k] = v
				}
				in[it.parentField] = map[string]any{"id": it.parent.id}
			}
			it.ent, it.errs = normalizeEntity(sch, in, resolve)
			it.id = declaredID(it, seen)
			if it.preErrs != nil {
				if it.errs == nil {
					it.errs = errTree{}
				}
				for k, v := range it.preErrs {
					it.errs[k] = v
				}
			}
			if it.errs != nil {
				bad = append(bad, it)
				continue
			}
			it.ent["id"] = it.id
			if it.ent["created_at"] == nil {
				it.ent["created_at"] = float64(createdAt)
			}
			if sch.field("updated_at") != nil && it.ent["updated_at"] == nil {
				it.ent["updated_at"] = it.ent["created_at"]
			}
			if other := ids[c][it.id]; other != nil {
				it.errs = errTree{"@entity": strs(fmt.Sprintf("uniqueness violation: '%s' entity with primary key set to '%s' already declared", c, it.id))}
				bad = append(bad, it)
				continue
			}
			if msg := uniquenessViolation(sch, it.ent, uniq); msg != "" {
				it.errs = errTree{"@entity": strs(msg)}
				bad = append(bad, it)
				continue
			}
			ids[c][it.id] = it
			if sch.endpointKey != "" && sch.cacheKey == nil {
				if k := asString(it.ent[sch.endpointKey]); k != "" {
					names[c][k] = it.id
				}
			}
		}
	}
	// References given by id must point into this document.
	for _, c := range collections {
		for _, it := range items[c] {
			if it.errs != nil {
				continue
			}
			for _, f := range schemas[c].foreignFields() {
				ref := foreignID(it.ent, f.name)
				if ref != "" && ids[f.ref][ref] == nil {
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
		return nil, newDeclarativeError(nil, bad)
	}
	ents := make(map[string][]entity, len(collections))
	for _, c := range collections {
		for _, it := range items[c] {
			ents[c] = append(ents[c], it.ent)
		}
	}
	return newState(ents), nil
}

// collectItems walks one collection array (and the children nested in its
// entries) into items; it returns a message when v is not an array.
func collectItems(coll string, v any, path []any, parent *declItem, parentField string, items map[string][]*declItem) string {
	arr, ok := v.([]any)
	if !ok {
		if m, isMap := v.(map[string]any); isMap && len(m) == 0 {
			return ""
		}
		return "expected an array"
	}
	for i, raw := range arr {
		p := append(append([]any{}, path...), i)
		m, ok := raw.(map[string]any)
		if !ok {
			it := &declItem{coll: coll, raw: map[string]any{}, path: p, parent: parent, parentField: parentField,
				preErrs: errTree{"@entity": strs("expected a record")}}
			items[coll] = append(items[coll], it)
			continue
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
				own[k] = x
			}
		}
		it := &declItem{coll: coll, raw: own, path: p, parent: parent, parentField: parentField}
		items[coll] = append(items[coll], it)
		sort.Slice(children, func(a, b int) bool { return children[a].key < children[b].key })
		for _, ch := range children {
			if msg := collectItems(ch.coll, ch.v, append(append([]any{}, p...), ch.key), it, ch.field, items); msg != "" {
				it.preErrs = errTree{ch.key: msg}
			}
		}
	}
	return ""
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

// declaredID is the entity's own id, or a deterministic one derived from
// its natural key (or, lacking one, its content and parent) so that loading
// the same document twice yields the same ids and hash.
func declaredID(it *declItem, seen map[string]int) string {
	if s, ok := it.raw["id"].(string); ok && isUUID(s) {
		return strings.ToLower(s)
	}
	sch := schemas[it.coll]
	key := ""
	if it.ent != nil {
		key = uniqueName(sch, it.ent)
		if key == "" {
			b, _ := json.Marshal(dropNulls(it.ent))
			sum := sha1.Sum(b)
			key = fmt.Sprintf("content:%x", sum)
		}
	} else {
		key = "position:" + fmt.Sprint(it.path...)
	}
	seen[key]++
	if n := seen[key]; n > 1 {
		key += "#" + strconv.Itoa(n)
	}
	return uuid.NewSHA1(idNamespace, []byte(it.coll+"\x00"+key)).String()
}

// uniquenessViolation checks the unique fields of e against those already
// declared, recording e's values when there is no clash.
func uniquenessViolation(sch *entitySchema, e entity, seen map[string]*declItem) string {
	var keys []string
	var msgs []string
	for _, f := range sch.fields {
		if f.unique && e[f.name] != nil {
			k := f.name + "\x00" + asString(e[f.name])
			if seen[k] != nil {
				msgs = append(msgs, fmt.Sprintf("uniqueness violation: '%s' entity with %s set to '%v' already declared", sch.collection, f.name, e[f.name]))
			}
			keys = append(keys, k)
		}
	}
	if sch.cacheKey != nil {
		k := "\x00cache\x00" + sch.cacheKey(e)
		if seen[k] != nil {
			msgs = append(msgs, fmt.Sprintf("uniqueness violation: '%s' entity with %s already declared", sch.collection, describeCacheKey(sch, e)))
		}
		keys = append(keys, k)
	}
	if len(msgs) > 0 {
		return strings.Join(msgs, "; ")
	}
	for _, k := range keys {
		seen[k] = &declItem{}
	}
	return ""
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
	sort.SliceStable(bad, func(i, j int) bool { return pathLess(bad[i].path, bad[j].path) })
	for _, it := range bad {
		fields = setAt(fields, it.path, it.errs).(map[string]any)
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
