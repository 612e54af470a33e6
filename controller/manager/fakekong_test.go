package manager

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	"konductor.dev/controller/fence"
)

// fakeKong is a DB-less Kong Admin API just big enough for the manager's
// tests: GET / (probe), GET /status (hash), POST /config (push).
type fakeKong struct {
	mu      sync.Mutex
	hash    string
	pushes  [][]byte    // accepted bodies, in order
	times   []time.Time // when each was accepted
	writers []string    // fence writer header of each accepted push
	failing bool        // answer POST /config with 500
	refused int         // POST /config answered 500
	// database is reported by GET / ("off" when empty).
	database string
	// routerFlavor is reported by GET / ("traditional_compatible" when
	// empty).
	routerFlavor string
	// reject, when set, answers POST /config with 400 and these
	// flattened errors.
	reject []map[string]any
}

const zeroHash = "00000000000000000000000000000000"

func (k *fakeKong) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		db := k.database
		if db == "" {
			db = "off"
		}
		flavor := k.routerFlavor
		if flavor == "" {
			flavor = "traditional_compatible"
		}
		json.NewEncoder(w).Encode(map[string]any{"version": "3.9.1", "node_id": "n1", "hostname": "kong-0",
			"configuration": map[string]any{"database": db, "router_flavor": flavor, "role": "traditional"}})
	case r.Method == http.MethodGet && r.URL.Path == "/status":
		h := k.hash
		if h == "" {
			h = zeroHash
		}
		json.NewEncoder(w).Encode(map[string]any{"configuration_hash": h, "server": map[string]any{"total_requests": 0}})
	case r.Method == http.MethodPost && r.URL.Path == "/config":
		body, _ := io.ReadAll(r.Body)
		if k.reject != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"code": 14, "name": "invalid declarative configuration",
				"message": "declarative config is invalid", "flattened_errors": k.reject})
			return
		}
		if k.failing {
			k.refused++
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"message":"An unexpected error occurred"}`)
			return
		}
		sum := md5.Sum(body)
		k.hash = hex.EncodeToString(sum[:])
		k.pushes = append(k.pushes, body)
		k.times = append(k.times, time.Now())
		k.writers = append(k.writers, r.Header.Get(fence.HeaderWriter))
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"Not found"}`)
	}
}

func (k *fakeKong) setFailing(f bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failing = f
}

func (k *fakeKong) refusedCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.refused
}

func (k *fakeKong) pushTimes() []time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.times)
}

func (k *fakeKong) pushWriters() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.writers)
}

func (k *fakeKong) pushCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.pushes)
}

// lastBody is the last accepted configuration.
func (k *fakeKong) lastBody() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.pushes) == 0 {
		return nil
	}
	return k.pushes[len(k.pushes)-1]
}

// bodiesBy lists the configurations writer pushed, in order.
func (k *fakeKong) bodiesBy(writer string) [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out [][]byte
	for i, w := range k.writers {
		if w == writer {
			out = append(out, k.pushes[i])
		}
	}
	return out
}

// lastRoutes returns the route names of the last accepted configuration.
func (k *fakeKong) lastRoutes() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.pushes) == 0 {
		return nil
	}
	var doc any
	if err := json.Unmarshal(k.pushes[len(k.pushes)-1], &doc); err != nil {
		return []string{"unparseable: " + err.Error()}
	}
	var names []string
	var walk func(v any, inRoutes bool)
	walk = func(v any, inRoutes bool) {
		switch v := v.(type) {
		case map[string]any:
			if inRoutes {
				if n, ok := v["name"].(string); ok {
					names = append(names, n)
				}
			}
			for key, child := range v {
				walk(child, key == "routes")
			}
		case []any:
			for _, child := range v {
				walk(child, inRoutes)
			}
		}
	}
	walk(doc, false)
	slices.Sort(names)
	return names
}

// memoryTransport serves requests with a handler, without a network.
type memoryTransport struct{ handler http.Handler }

// hosts routes requests to one handler per host:port.
type hosts map[string]http.Handler

func (h hosts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if k, ok := h[r.URL.Host]; ok {
		k.ServeHTTP(w, r)
		return
	}
	http.Error(w, "no such host", http.StatusBadGateway)
}

func (t memoryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	if r.Body != nil {
		defer r.Body.Close()
	}
	rec := httptest.NewRecorder()
	t.handler.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// lastExpressions returns the route expressions of the last accepted
// configuration ("" for a traditional route).
func (k *fakeKong) lastExpressions() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.pushes) == 0 {
		return nil
	}
	var doc struct {
		Services []struct {
			Routes []struct {
				Expression string `json:"expression"`
			} `json:"routes"`
		} `json:"services"`
	}
	if err := json.Unmarshal(k.pushes[len(k.pushes)-1], &doc); err != nil {
		return []string{"unparseable: " + err.Error()}
	}
	var out []string
	for _, s := range doc.Services {
		for _, r := range s.Routes {
			out = append(out, r.Expression)
		}
	}
	return out
}

func (k *fakeKong) setRouterFlavor(f string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.routerFlavor = f
}
