package dbsync

import (
	"cmp"
	"crypto/sha1"
	"encoding/hex"
	"reflect"
	"slices"
	"sync"

	"github.com/kong/go-kong/kong"
)

// Action is what a sync does to one entity.
type Action int

// Actions. Create and Update are both a PUT by id; they differ only in
// whether Kong held the entity before, which metrics and logs report.
const (
	Create Action = iota
	Update
	Delete
)

func (a Action) String() string {
	switch a {
	case Create:
		return "create"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// Op is one write. For a Delete, Entity is the one Kong holds.
type Op struct {
	Action Action
	Entity Entity
}

// Phase orders writes so that Kong's foreign keys always hold: parents are
// written before their children (consumers before their credentials;
// routes, services and consumers before their plugins), and children
// deleted before their parents. Writes of one phase are independent of each
// other.
func (o Op) Phase() int {
	d := o.Entity.Kind.depth()
	if o.Action != Delete {
		return d
	}
	return 2*maxDepth + 1 - d
}

// Plan is the difference between desired and existing entities, ordered by
// phase, then kind, then id.
type Plan struct {
	Ops []Op
}

// numPhases is the number of distinct Op.Phase values.
const numPhases = 2 * (maxDepth + 1)

// Phases groups the ops by phase, in execution order; phases without ops
// are left out.
func (p Plan) Phases() [][]Op {
	var out [][]Op
	for start := 0; start < len(p.Ops); {
		end := start + 1
		for end < len(p.Ops) && p.Ops[end].Phase() == p.Ops[start].Phase() {
			end++
		}
		out = append(out, p.Ops[start:end])
		start = end
	}
	return out
}

// Count returns how many ops have action a.
func (p Plan) Count(a Action) int {
	n := 0
	for _, op := range p.Ops {
		if op.Action == a {
			n++
		}
	}
	return n
}

// Diff computes the writes that turn existing into desired. Entities are
// matched by kind and id; an entity present in both is updated only when
// Equal says it differs.
func Diff(desired, existing *Set) Plan {
	var ops []Op
	for _, kind := range Kinds {
		for id, want := range desired[kind] {
			have, ok := existing[kind][id]
			switch {
			case !ok:
				ops = append(ops, Op{Action: Create, Entity: want})
			case want.Parent != have.Parent || !Equal(kind, want.Obj, have.Obj):
				ops = append(ops, Op{Action: Update, Entity: want})
			}
		}
		for id, have := range existing[kind] {
			if _, ok := desired[kind][id]; !ok {
				ops = append(ops, Op{Action: Delete, Entity: have})
			}
		}
	}
	sortOps(ops)
	return Plan{Ops: ops}
}

// sortOps orders ops by phase, then kind, then id.
func sortOps(ops []Op) {
	slices.SortFunc(ops, func(a, b Op) int {
		return cmp.Or(cmp.Compare(a.Phase(), b.Phase()), cmp.Compare(a.Entity.Kind, b.Entity.Kind), cmp.Compare(a.Entity.ID, b.Entity.ID))
	})
}

// Kong's defaults for fields konductor may leave unset, by kind and Go
// field name, typed as go-kong's fields are. A field missing on either side
// counts as its default, so an entity Kong stored with defaults filled in
// equals the desired one that left them out.
var defaults = map[Kind]map[string]any{
	KindService: {
		"Protocol": kong.String("http"), "Port": kong.Int(80), "Retries": kong.Int(5),
		"ConnectTimeout": kong.Int(60000), "ReadTimeout": kong.Int(60000), "WriteTimeout": kong.Int(60000),
		"Enabled": kong.Bool(true),
	},
	KindRoute: {
		"Protocols": kong.StringSlice("http", "https"), "StripPath": kong.Bool(true), "PreserveHost": kong.Bool(false),
		"RegexPriority": kong.Int(0), "PathHandling": kong.String("v0"), "HTTPSRedirectStatusCode": kong.Int(426),
		"RequestBuffering": kong.Bool(true), "ResponseBuffering": kong.Bool(true),
	},
	KindUpstream: {
		"Algorithm": kong.String("round-robin"), "HashOn": kong.String("none"), "HashFallback": kong.String("none"),
		"HashOnCookiePath": kong.String("/"), "Slots": kong.Int(10000), "UseSrvName": kong.Bool(false),
	},
	KindTarget: {"Weight": kong.Int(100)},
	KindPlugin: {"Enabled": kong.Bool(true), "Protocols": kong.StringSlice("grpc", "grpcs", "http", "https")},
}

// nullable lists fields without a default that change what Kong does when
// set. When the desired entity leaves one unset, Kong's must be unset (or
// empty) too, so that a value added behind our back is found as drift.
var nullable = map[Kind][]string{
	KindService:     {"Path", "TLSVerify", "TLSVerifyDepth", "ClientCertificate", "CACertificates", "URL"},
	KindRoute:       {"Hosts", "Paths", "Methods", "Headers", "SNIs", "Sources", "Destinations", "Expression"},
	KindUpstream:    {"HostHeader", "ClientCertificate", "HashOnHeader", "HashFallbackHeader", "HashOnCookie", "HashOnQueryArg", "HashFallbackQueryArg", "HashOnURICapture", "HashFallbackURICapture"},
	KindCertificate: {"CertAlt", "KeyAlt"},
	KindConsumer:    {"Username", "CustomID"},
	KindPlugin:      {"Route", "Service", "Consumer", "ConsumerGroup", "InstanceName"},
	KindJWT:         {"RSAPublicKey"},
}

// serverFields are set by Kong, never by us.
var serverFields = map[string]bool{"ID": true, "CreatedAt": true, "UpdatedAt": true}

// Equal reports whether have (read from Kong) already is want (desired):
// every field want sets has the same value in have, a field left unset
// counts as Kong's default, and the fields in nullable are unset in both.
// String lists (hosts, paths, methods, tags, ...) compare as sets, since
// their order does not change what Kong does. want and have must be
// pointers to the same go-kong type.
func Equal(kind Kind, want, have any) bool {
	w, h := reflect.ValueOf(want), reflect.ValueOf(have)
	if w.Type() != h.Type() || w.Kind() != reflect.Pointer {
		return false
	}
	if w.IsNil() || h.IsNil() {
		return w.IsNil() == h.IsNil()
	}
	if kind == KindBasicAuth {
		h = reflect.ValueOf(storedPassword(want.(*kong.BasicAuth), have.(*kong.BasicAuth)))
	}
	w, h = w.Elem(), h.Elem()
	for _, f := range comparison(kind, w.Type()) {
		wf, hf := w.Field(f.index), h.Field(f.index)
		if unset(wf) {
			switch {
			case f.hasDef:
				wf = f.def
			case f.nullable:
				if !empty(hf) {
					return false
				}
				continue
			default:
				continue // not ours: whatever Kong holds stays
			}
		}
		if f.hasDef && unset(hf) {
			hf = f.def
		}
		if !covers(wf, hf) {
			return false
		}
	}
	return true
}

// storedPassword returns have with its password replaced by want's when
// Kong holds want's password in its stored form: Kong keeps a basic-auth
// password as the hex sha1 of the password followed by the consumer's id,
// and serves that, never the password.
func storedPassword(want, have *kong.BasicAuth) *kong.BasicAuth {
	if want.Password == nil || have.Password == nil || *want.Password == *have.Password {
		return have
	}
	if *have.Password != storedForm(*want.Password, consumerID(have.Consumer)) {
		return have
	}
	c := *have
	c.Password = want.Password
	return &c
}

// storedForm is how Kong stores a basic-auth password of a consumer.
func storedForm(password, consumerID string) string {
	sum := sha1.Sum([]byte(password + consumerID))
	return hex.EncodeToString(sum[:])
}

// fieldRule is how Equal treats one field of a go-kong type.
type fieldRule struct {
	index    int
	def      reflect.Value
	hasDef   bool
	nullable bool
}

type ruleKey struct {
	kind Kind
	typ  reflect.Type
}

var rules sync.Map // ruleKey -> []fieldRule

// comparison returns the rules for the fields of typ that Equal looks at,
// worked out once per kind and type from defaults and nullable.
func comparison(kind Kind, typ reflect.Type) []fieldRule {
	key := ruleKey{kind, typ}
	if r, ok := rules.Load(key); ok {
		return r.([]fieldRule)
	}
	var out []fieldRule
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if serverFields[name] || !typ.Field(i).IsExported() {
			continue
		}
		r := fieldRule{index: i, nullable: slices.Contains(nullable[kind], name)}
		if def, ok := defaults[kind][name]; ok {
			r.def, r.hasDef = reflect.ValueOf(def), true
		}
		out = append(out, r)
	}
	rules.Store(key, out)
	return out
}

// covers reports whether have holds every value want sets.
func covers(want, have reflect.Value) bool {
	switch want.Kind() {
	case reflect.Pointer:
		if want.IsNil() {
			return true
		}
		if have.IsNil() {
			return false
		}
		return covers(want.Elem(), have.Elem())
	case reflect.Struct:
		for i := range want.NumField() {
			if !want.Type().Field(i).IsExported() {
				continue
			}
			if !covers(want.Field(i), have.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if want.IsNil() {
			return true
		}
		if want.Type().Elem() == stringPtr {
			return sameStringSet(want.Interface().([]*string), have.Interface().([]*string))
		}
		if want.Len() != have.Len() {
			return false
		}
		for i := range want.Len() {
			if !covers(want.Index(i), have.Index(i)) || !covers(have.Index(i), want.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if want.IsNil() {
			return true
		}
		if want.Type() == configurationType {
			return coversJSON(map[string]any(want.Interface().(kong.Configuration)), map[string]any(have.Interface().(kong.Configuration)))
		}
		if want.Len() == 0 && have.Len() == 0 {
			return true
		}
		return reflect.DeepEqual(want.Interface(), have.Interface())
	default:
		return want.Equal(have)
	}
}

var (
	stringPtr         = reflect.TypeFor[*string]()
	configurationType = reflect.TypeFor[kong.Configuration]()
)

// coversJSON compares a plugin's decoded config: every key want sets has
// the same value in have, recursively through objects, while Kong fills
// the keys we leave out with the plugin schema's defaults. Arrays match
// element by element; a null in want matches a missing or null value.
func coversJSON(want, have any) bool {
	switch w := want.(type) {
	case nil:
		return have == nil
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			hv, present := h[k]
			if !present && wv != nil {
				return false
			}
			if !coversJSON(wv, hv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !coversJSON(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(want, have)
	}
}

func sameStringSet(a, b []*string) bool {
	x, y := derefAll(a), derefAll(b)
	if len(x) != len(y) {
		return false
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// unset reports a nil pointer, slice or map.
func unset(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// empty reports unset, or a list or map without elements.
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return unset(v)
}
