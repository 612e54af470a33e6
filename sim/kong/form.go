package kong

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// formEntity turns an Admin API form body (`curl -d name=x -d port=80
// -d paths[]=/a -d service.id=...`) into the JSON shape of an entity:
// dotted keys nest, repeated or "[]" keys make arrays, and values are
// converted to the type the schema gives their field. Values that do not
// convert stay strings so that validation reports them.
func formEntity(sch *entitySchema, vals url.Values) map[string]any {
	out := map[string]any{}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := sch.fields
	if sch.collection == "plugins" {
		if name := vals.Get("name"); name != "" {
			fields, _ = pluginFields(map[string]any{"name": name})
		}
	}
	for _, k := range keys {
		list := strings.HasSuffix(k, "[]")
		path := strings.Split(strings.TrimSuffix(k, "[]"), ".")
		for i, p := range path {
			// paths[1]=/a is the indexed form of paths[]=/a.
			if j := strings.IndexByte(p, '['); j > 0 && strings.HasSuffix(p, "]") {
				path[i] = p[:j]
				list = true
			}
		}
		f := lookupField(fields, path)
		setPath(out, path, formValue(f, vals[k], list))
	}
	return out
}

func lookupField(fs []*field, path []string) *field {
	var f *field
	for _, name := range path {
		f = nil
		for _, c := range fs {
			if c.name == name {
				f = c
			}
		}
		if f == nil {
			return nil
		}
		if f.typ == tForeign {
			// service.id and service.name name the referenced entity.
			return &field{typ: tString}
		}
		fs = f.fields
	}
	return f
}

func formValue(f *field, vs []string, list bool) any {
	if f != nil && (f.typ == tArray || f.typ == tSet) {
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = scalarValue(f.elem, v)
		}
		return out
	}
	if list || len(vs) > 1 {
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = v
		}
		return out
	}
	return scalarValue(f, vs[0])
}

func scalarValue(f *field, v string) any {
	if f == nil {
		return v
	}
	switch f.typ {
	case tInteger, tNumber:
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			return n
		}
	case tBoolean:
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return v
}

func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}
