package kong

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/google/uuid"

	"konductor.dev/sim/kong/store"
)

// scope restricts an operation to the children of one parent, as nested
// Admin API paths (/services/{s}/routes) do.
type scope struct {
	field    string // foreign field on the child ("service")
	parentID string
}

// put is one entity to store.
type put struct {
	sch *entitySchema
	e   entity
}

// mutation is the outcome of a validated write, computed against a State
// snapshot and then committed by the caller.
type mutation struct {
	puts   []put
	dels   []store.Key
	result entity // response body, nil for deletes
	status int
}

// lookup finds an entity by id or endpoint key within sc (nil: anywhere).
func lookup(st *State, sch *entitySchema, key string, sc *scope) entity {
	var e entity
	switch {
	case isUUID(key):
		e = st.get(sch.collection, key)
	case sch.collection == "targets":
		if sc != nil {
			e = st.byName("targets", sc.parentID+":"+targetWithPort(key))
		}
	case sch.collection == "acls":
		// Below a consumer, Kong finds an ACL by its group too.
		if sc != nil {
			e = st.byName("acls", "acls:"+sc.parentID+":"+key)
		}
	case sch.collection == "certificates":
		// Kong also finds a certificate by one of its SNIs.
		if sni := st.byName("snis", key); sni != nil {
			e = st.get("certificates", foreignID(sni, "certificate"))
		}
	case sch.endpointKey != "" && sch.cacheKey == nil:
		e = st.byName(sch.collection, key)
	}
	if e != nil && sc != nil && foreignID(e, sc.field) != sc.parentID {
		return nil
	}
	return e
}

// present adds what Kong shows beside stored fields: a certificate's SNIs.
func present(st *State, sch *entitySchema, e entity) entity {
	if sch.collection != "certificates" {
		return e
	}
	out := make(entity, len(e)+1)
	for k, v := range e {
		out[k] = v
	}
	out["snis"] = strs(certificateSNIs(st, asString(e["id"]))...)
	return out
}

func certificateSNIs(st *State, certID string) []string {
	var names []string
	for _, s := range st.childrenOf("snis", "certificate", certID) {
		names = append(names, asString(s["name"]))
	}
	sort.Strings(names)
	return names
}

// writeOp describes one create, upsert or update request.
type writeOp struct {
	st       *State
	sch      *entitySchema
	body     map[string]any
	existing entity // the entity replaced or patched, nil on create
	id       string // id to use when creating
	sc       *scope
	now      int64
	// keepPassword, when set, is the stored basic-auth password hash that
	// a PATCH without a password keeps.
	keepPassword string
}

// build validates the new entity and computes the mutation.
func (op writeOp) build(status int) (*mutation, *apiError) {
	body := make(map[string]any, len(op.body)+2)
	for k, v := range op.body {
		body[k] = v
	}
	var snis []string
	hasSNIs := false
	if op.sch.collection == "certificates" {
		if raw, ok := body["snis"]; ok {
			delete(body, "snis")
			if raw != nil {
				arr, isArr := raw.([]any)
				if !isArr {
					return nil, schemaViolation(errTree{"snis": "expected an array"})
				}
				for _, x := range arr {
					s, isStr := x.(string)
					if !isStr {
						return nil, schemaViolation(errTree{"snis": "expected an array of strings"})
					}
					snis = append(snis, s)
				}
			}
			hasSNIs = true
		}
	}
	if op.sc != nil {
		body[op.sc.field] = map[string]any{"id": op.sc.parentID}
	}
	e, errs := normalizeEntity(op.sch, body, op.st.resolve)
	if errs != nil {
		return nil, schemaViolation(errs)
	}
	id := op.id
	created := float64(op.now)
	if op.existing != nil {
		id = asString(op.existing["id"])
		if c, ok := op.existing["created_at"].(float64); ok {
			created = c
		}
	}
	if id == "" {
		id = uuid.NewString()
	}
	e["id"] = id
	e["created_at"] = created
	if op.sch.field("updated_at") != nil {
		e["updated_at"] = float64(op.now)
	}
	if op.keepPassword != "" {
		e["password"] = op.keepPassword
	} else {
		transformOnWrite(op.sch, e)
	}
	fillAutoFields(op.sch, e, "")
	if err := checkForeignKeys(op.st, op.sch, e); err != nil {
		return nil, err
	}
	if err := checkUnique(op.st, op.sch, e); err != nil {
		return nil, err
	}
	m := &mutation{puts: []put{{op.sch, e}}, result: e, status: status}
	if op.sch.collection == "certificates" {
		if !hasSNIs {
			snis = certificateSNIs(op.st, id)
		}
		if err := m.setCertificateSNIs(op.st, id, snis, op.now); err != nil {
			return nil, err
		}
		m.result = make(entity, len(e)+1)
		for k, v := range e {
			m.result[k] = v
		}
		sort.Strings(snis)
		m.result["snis"] = strs(snis...)
	}
	return m, nil
}

// setCertificateSNIs makes names the exact SNI set of a certificate.
func (m *mutation) setCertificateSNIs(st *State, certID string, names []string, now int64) *apiError {
	want := map[string]bool{}
	sniSchema := schemas["snis"]
	for _, n := range names {
		want[n] = true
		existing := st.byName("snis", n)
		if existing != nil {
			if foreignID(existing, "certificate") != certID {
				return codedError(http.StatusConflict, codeUniqueViolation,
					fmt.Sprintf("UNIQUE violation detected on '{name=%q}'", n), map[string]any{"name": n})
			}
			continue
		}
		e, errs := normalizeEntity(sniSchema, map[string]any{"name": n, "certificate": map[string]any{"id": certID}}, nil)
		if errs != nil {
			return schemaViolation(errTree{"snis": errs["name"]})
		}
		e["id"] = uuid.NewString()
		e["created_at"] = float64(now)
		e["updated_at"] = float64(now)
		m.puts = append(m.puts, put{sniSchema, e})
	}
	for _, s := range st.childrenOf("snis", "certificate", certID) {
		if !want[asString(s["name"])] {
			m.dels = append(m.dels, store.Key{Type: "snis", ID: asString(s["id"])})
		}
	}
	return nil
}

func checkForeignKeys(st *State, sch *entitySchema, e entity) *apiError {
	for _, f := range sch.foreignFields() {
		id := foreignID(e, f.name)
		if id == "" || st.get(f.ref, id) != nil {
			continue
		}
		return codedError(http.StatusBadRequest, codeForeignKeyViolation,
			fmt.Sprintf("the foreign key '{id=%q}' does not reference an existing '%s' entity.", id, f.ref),
			map[string]any{f.name: map[string]any{"id": id}})
	}
	return nil
}

func checkUnique(st *State, sch *entitySchema, e entity) *apiError {
	id := asString(e["id"])
	clash := func(kv map[string]any) *apiError {
		return codedError(http.StatusConflict, codeUniqueViolation,
			fmt.Sprintf("UNIQUE violation detected on '%s'", luaKeyValues(kv)), kv)
	}
	for _, f := range sch.fields {
		v := e[f.name]
		if !f.unique || v == nil {
			continue
		}
		if f.name == sch.endpointKey && sch.cacheKey == nil {
			if other := st.byName(sch.collection, asString(v)); other != nil && asString(other["id"]) != id {
				return clash(map[string]any{f.name: v})
			}
			continue
		}
		if other := st.byUnique(sch.collection, f.name, asString(v)); other != nil && asString(other["id"]) != id {
			return clash(map[string]any{f.name: v})
		}
	}
	if sch.cacheKey != nil {
		if other := st.byName(sch.collection, sch.cacheKey(e)); other != nil && asString(other["id"]) != id {
			kv := map[string]any{}
			switch sch.collection {
			case "targets":
				kv["target"] = e["target"]
				kv["upstream"] = e["upstream"]
			case "plugins":
				for _, k := range []string{"name", "route", "service", "consumer"} {
					kv[k] = e[k]
				}
			}
			return clash(kv)
		}
	}
	return nil
}

// deletion computes what deleting e removes: e, and the children Kong
// deletes in cascade. Children that must not be orphaned refuse it.
func deletion(st *State, sch *entitySchema, e entity) ([]store.Key, *apiError) {
	id := asString(e["id"])
	keys := []store.Key{{Type: sch.collection, ID: id}}
	for _, dep := range sch.dependents {
		for _, child := range st.childrenOf(dep.collection, dep.field, id) {
			if !dep.cascade {
				return nil, codedError(http.StatusBadRequest, codeForeignKeyViolation,
					fmt.Sprintf("an existing '%s' entity references this '%s' entity", dep.collection, sch.collection),
					map[string]any{"@referenced_by": dep.collection})
			}
			more, err := deletion(st, schemas[dep.collection], child)
			if err != nil {
				return nil, err
			}
			keys = append(keys, more...)
		}
	}
	return keys, nil
}

// mergePatch applies a PATCH body: top-level fields replace, records merge
// (so {"config":{"minute":5}} keeps the rest of a plugin's config).
func mergePatch(sch *entitySchema, existing entity, patch map[string]any) map[string]any {
	out := make(map[string]any, len(existing)+len(patch))
	for k, v := range existing {
		out[k] = v
	}
	for k, v := range patch {
		f := sch.field(k)
		old, oldIsMap := out[k].(map[string]any)
		nv, newIsMap := v.(map[string]any)
		if f != nil && f.typ == tRecord && oldIsMap && newIsMap {
			out[k] = mergeRecord(old, nv)
			continue
		}
		out[k] = v
	}
	// Timestamps and ids are the server's; a patch never sets them.
	delete(out, "updated_at")
	if sch.collection == "certificates" {
		delete(out, "snis")
		if v, ok := patch["snis"]; ok {
			out["snis"] = v
		}
	}
	return out
}

func mergeRecord(old, patch map[string]any) map[string]any {
	out := make(map[string]any, len(old)+len(patch))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range patch {
		o, oOK := out[k].(map[string]any)
		n, nOK := v.(map[string]any)
		if oOK && nOK {
			out[k] = mergeRecord(o, n)
			continue
		}
		out[k] = v
	}
	return out
}

// tagFilter parses ?tags=: "a,b" needs all, "a/b" needs any.
func tagFilter(q string) (func(entity) bool, *apiError) {
	if q == "" {
		return nil, nil
	}
	if strings.Contains(q, ",") && strings.Contains(q, "/") {
		return nil, codedError(http.StatusBadRequest, codeInvalidOptions,
			"invalid option (tags: invalid filter syntax)", map[string]any{"tags": "invalid filter syntax"})
	}
	all := !strings.Contains(q, "/")
	sep := ","
	if !all {
		sep = "/"
	}
	want := strings.Split(q, sep)
	for _, t := range want {
		if t == "" || checkTag(t) != "" {
			return nil, codedError(http.StatusBadRequest, codeInvalidOptions,
				"invalid option (tags: invalid filter syntax)", map[string]any{"tags": "invalid filter syntax"})
		}
	}
	return func(e entity) bool {
		have := map[string]bool{}
		for _, t := range stringList(e["tags"]) {
			have[t] = true
		}
		for _, t := range want {
			if have[t] != all {
				return !all
			}
		}
		return all
	}, nil
}
