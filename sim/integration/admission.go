package integration

import (
	"encoding/json"
	"slices"
	"strconv"
)

// RejectRoutesWithHost is a stricter Kong: it refuses any declarative
// configuration holding a route for host, with Kong's 400 answer to
// POST /config?flatten_errors=1 naming that route, its tags and the field.
// konductor's translator cannot anticipate such a rule, so the refusal
// reaches the controller exactly as a real Kong's schema error would.
func RejectRoutesWithHost(host, message string) Admission {
	return func(body []byte) []byte {
		var doc struct {
			Services []struct {
				Routes []declRoute `json:"routes"`
			} `json:"services"`
			Routes []declRoute `json:"routes"`
		}
		if json.Unmarshal(body, &doc) != nil {
			return nil // the node itself answers what it cannot parse
		}
		routes := doc.Routes
		for _, s := range doc.Services {
			routes = append(routes, s.Routes...)
		}
		var flat []map[string]any
		fields := map[string]any{}
		for _, r := range routes {
			i := slices.Index(r.Hosts, host)
			if i < 0 {
				continue
			}
			field := "hosts." + strconv.Itoa(i+1) // Kong numbers array items from 1
			flat = append(flat, map[string]any{
				"entity_type": "route", "entity_name": r.Name, "entity_id": r.ID, "entity_tags": r.Tags,
				"entity": r.raw(),
				"errors": []map[string]any{{"type": "field", "field": field, "message": message}},
			})
			fields[r.Name] = map[string]any{"hosts": map[string]any{strconv.Itoa(i + 1): message}}
		}
		if len(flat) == 0 {
			return nil
		}
		out, _ := json.Marshal(map[string]any{
			"code": 14, "name": "invalid declarative configuration",
			"message":          "declarative config is invalid: {routes={...}}",
			"fields":           map[string]any{"routes": fields},
			"flattened_errors": flat,
		})
		return out
	}
}

type declRoute struct {
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Hosts []string `json:"hosts"`
	Tags  []string `json:"tags"`
}

func (r declRoute) raw() map[string]any {
	return map[string]any{"id": r.ID, "name": r.Name, "hosts": r.Hosts, "tags": r.Tags}
}
