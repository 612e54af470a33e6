package kong

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
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
		writeJSON(w, http.StatusOK, s.n.statusDocument(r.Context()))
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
