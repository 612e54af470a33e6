package kong

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Status returns the node's Status API handler (KONG_STATUS_LISTEN):
// GET /status, GET /status/ready, POST /status/ready with
// status=draining (or status=ready to undo it), and GET /metrics.
func (n *Node) Status() http.Handler { return statusAPI{n} }

type statusAPI struct{ n *Node }

func (s statusAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "kong/"+s.n.opts.Version)
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/status":
		if r.Method != http.MethodGet {
			writeError(w, errMethodNotAllowed)
			return
		}
		writeRaw(w, http.StatusOK, s.n.statusJSON(r.Context()))
	case "/metrics":
		// Kong's prometheus plugin serves its metrics here.
		if r.Method != http.MethodGet {
			writeError(w, errMethodNotAllowed)
			return
		}
		s.n.metrics.handler().ServeHTTP(w, r)
	case "/status/ready":
		switch r.Method {
		case http.MethodGet:
			if ok, why := s.n.Ready(r.Context()); !ok {
				writeJSON(w, http.StatusServiceUnavailable, map[string]any{"message": why})
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"message": "ready"})
		case http.MethodPost:
			switch readyStatusParam(r) {
			case "draining":
				s.n.SetDraining(true)
			case "ready":
				s.n.SetDraining(false)
			default:
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": "status must be 'draining' or 'ready'"})
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			writeError(w, errMethodNotAllowed)
		}
	default:
		writeError(w, errNotFound)
	}
}

// readyStatusParam reads status= from the query, a form body or a JSON body.
func readyStatusParam(r *http.Request) string {
	if v := r.URL.Query().Get("status"); v != "" {
		return v
	}
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "{") {
		var body struct{ Status string }
		if json.Unmarshal(b, &body) == nil {
			return body.Status
		}
		return ""
	}
	v, _ := url.ParseQuery(text)
	return v.Get("status")
}

// statusJSON is the body of GET /status on both listeners, as
// encoding/json renders Kong's document (keys sorted): the server's
// counters, memory, and the configuration hash (DB-less) or whether the
// database answers. A writing controller polls it twice a second per
// Kong, so it is appended by hand rather than built as maps and
// marshalled.
func (n *Node) statusJSON(ctx context.Context) []byte {
	total := strconv.AppendInt(nil, n.requests.Load()+n.proxy.Requests(), 10)
	b := make([]byte, 0, 384)
	if n.dbless {
		b = append(b, `{"configuration_hash":`...)
		b = appendJSONString(b, n.ConfigHash())
	} else {
		b = append(b, `{"database":{"reachable":`...)
		b = strconv.AppendBool(b, n.opts.Backend.Ping(ctx) == nil)
		b = append(b, '}')
	}
	b = append(b, `,"memory":{"lua_shared_dicts":{},"workers_lua_vms":[{"http_allocated_gc":"40.00 MiB","pid":2}]}`...)
	b = append(b, `,"server":{"connections_accepted":`...)
	b = append(b, total...)
	b = append(b, `,"connections_active":1,"connections_handled":`...)
	b = append(b, total...)
	b = append(b, `,"connections_reading":0,"connections_waiting":0,"connections_writing":1,"total_requests":`...)
	b = append(b, total...)
	return append(b, "}}"...)
}
