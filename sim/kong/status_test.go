package kong_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	sim "konductor.dev/sim/kong"
)

// GET /status on both listeners renders, byte for byte, what encoding/json
// makes of Kong's status document, in both modes and with the database
// up or down, counting every request the node served.
func TestStatusDocumentIsKongsRenderedAsJSON(t *testing.T) {
	document := func(total int64, hash string, db *bool) []byte {
		doc := map[string]any{
			"server": map[string]any{
				"total_requests": total, "connections_accepted": total, "connections_handled": total,
				"connections_active": 1, "connections_reading": 0, "connections_writing": 1, "connections_waiting": 0,
			},
			"memory": map[string]any{
				"workers_lua_vms":  []any{map[string]any{"pid": 2, "http_allocated_gc": "40.00 MiB"}},
				"lua_shared_dicts": map[string]any{},
			},
		}
		if db == nil {
			doc["configuration_hash"] = hash
		} else {
			doc["database"] = map[string]any{"reachable": *db}
		}
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	get := func(h http.Handler, url string) []byte {
		t.Helper()
		resp, err := (&http.Client{Transport: sim.NewInMemoryTransport(h)}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("GET %s = %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return b
	}
	up, down := true, false
	for _, tc := range []struct {
		name string
		mode mode
		db   *bool
	}{
		{"db-less", dbless, nil},
		{"database up", dbmode, &up},
		{"database down", dbmode, &down},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mode)
			if tc.mode == dbless {
				if code, body := e.do(t, http.MethodPost, "/config", `{"_format_version":"3.0","services":[{"name":"s","host":"h"}]}`); code != http.StatusCreated {
					t.Fatalf("POST /config = %d %v", code, body)
				}
			}
			if tc.db != nil && !*tc.db {
				e.mem.SetAvailable(false)
			}
			// Each GET counts itself, as Kong's counter does.
			for i, path := range []string{"http://kong-0:8001/status", "http://kong-0:8100/status"} {
				h := e.node.Admin()
				if i == 1 {
					h = e.node.Status()
				}
				got := get(h, path)
				var served struct {
					Server struct {
						TotalRequests int64 `json:"total_requests"`
					}
				}
				if err := json.Unmarshal(got, &served); err != nil {
					t.Fatalf("%s: %v in %s", path, err, got)
				}
				if served.Server.TotalRequests == 0 {
					t.Fatalf("%s counts no request: %s", path, got)
				}
				want := document(served.Server.TotalRequests, e.node.ConfigHash(), tc.db)
				if string(got) != string(want) {
					t.Errorf("%s:\n got %s\nwant %s", path, got, want)
				}
			}
		})
	}
}
