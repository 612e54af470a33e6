package kong

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
)

// tags serves GET /tags and GET /tags/{tag}: one row per tag of every
// tagged entity, {"entity_name", "entity_id", "tag"}, paginated like any
// list. Rows come by collection, then entity id, then the tag's place on
// the entity; the offset is opaque, as Kong's.
func (a adminAPI) tags(w http.ResponseWriter, r *http.Request, segs []string) *apiError {
	if len(segs) > 1 {
		return errNotFound
	}
	if r.Method != http.MethodGet {
		return errMethodNotAllowed
	}
	only := ""
	if len(segs) == 1 {
		only = segs[0]
		if checkTag(only) != "" {
			return codedError(http.StatusBadRequest, codeInvalidOptions,
				"invalid option (tags: invalid filter syntax)", map[string]any{"tags": "invalid filter syntax"})
		}
	}
	q := r.URL.Query()
	size := 100
	if s := q.Get("size"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			return codedError(http.StatusBadRequest, codeInvalidSize, "size must be an integer between 1 and 1000", nil)
		}
		size = v
	}
	start := 0
	if off := q.Get("offset"); off != "" {
		b, err := base64.RawURLEncoding.DecodeString(off)
		n, perr := strconv.Atoi(string(b))
		if err != nil || perr != nil || n < 0 {
			return codedError(http.StatusBadRequest, codeInvalidOffset, "'"+off+"' is not a valid offset: bad base64 encoding", nil)
		}
		start = n
	}
	st, _, err := a.n.readState(r.Context())
	if err != nil {
		return errInternal
	}
	data := []any{}
	i, more := 0, false
rows:
	for _, coll := range collections {
		for _, e := range st.list(coll) {
			for _, tag := range stringList(e["tags"]) {
				if only != "" && tag != only {
					continue
				}
				if i >= start {
					if len(data) == size {
						more = true
						break rows
					}
					data = append(data, map[string]any{"entity_name": coll, "entity_id": asString(e["id"]), "tag": tag})
				}
				i++
			}
		}
	}
	body := map[string]any{"data": data, "next": nil}
	if more {
		off := base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(start + size)))
		next := url.Values{"offset": {off}}
		if q.Get("size") != "" {
			next.Set("size", q.Get("size"))
		}
		body["offset"] = off
		body["next"] = r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}
