package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletServer is one node's kubelet API on its own port: what the API
// server proxies pods/log to (/containerLogs), and what metrics-server
// scrapes (/metrics/resource). Callers are
// authenticated and authorized as the kubelet does it: a client
// certificate signed by the cluster CA or a bearer token checked by a
// TokenReview, then a SubjectAccessReview on a subresource of the Node.
type kubeletServer struct {
	a    *Agent
	node string
	ln   net.Listener
	srv  *http.Server
}

// startKubeletServer listens on the agent's host address at a port of the
// kernel's choosing; Port is what the Node publishes.
func (a *Agent) startKubeletServer(node string) (*kubeletServer, error) {
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(a.cfg.CACert) {
		return nil, errors.New("node config: CACert holds no certificate to verify kubelet clients with")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(a.hostIP, "0"))
	if err != nil {
		return nil, fmt.Errorf("kubelet API of node %s: %w", node, err)
	}
	s := &kubeletServer{a: a, node: node, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.containerLogs)
	metrics, err := a.resourceMetricsHandler(node)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	mux.Handle("GET /metrics/resource", metrics)
	s.srv = &http.Server{
		Handler: s.authenticated(mux),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{*a.cfg.ServingCert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    clientCAs,
			MinVersion:   tls.VersionTLS12,
		},
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return a.ctx },
		// Failed handshakes (a client without our CA) belong in the
		// agent's log, not on stderr.
		ErrorLog: log.New(logfWriter(a.cfg.Logf), "kubelet API of node "+node+": ", 0),
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// Port is where the server listens.
func (s *kubeletServer) Port() int32 { return int32(s.ln.Addr().(*net.TCPAddr).Port) }

// stop closes the listener and every open connection, ending followers.
func (s *kubeletServer) stop() { _ = s.srv.Close() }

// authenticated wraps h with the kubelet's authentication and
// authorization: 401 without a valid identity, 403 without the right on
// the path's subresource of this Node.
func (s *kubeletServer) authenticated(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := s.authenticate(r)
		if err != nil {
			s.a.cfg.Logf("kubelet API of node %s: authentication: %v", s.node, err)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		verb := requestVerb(r.Method)
		allowed := false
		subresources := requestSubresources(r.URL.Path)
		for _, sub := range subresources {
			allowed, err = s.authorize(r.Context(), user, verb, sub)
			if err != nil {
				s.a.cfg.Logf("kubelet API of node %s: authorization: %v", s.node, err)
				http.Error(w, "authorization check failed", http.StatusInternalServerError)
				return
			}
			if allowed {
				break
			}
		}
		if !allowed {
			msg := fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v)", user.Username, verb, subresources)
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authenticate names the caller: the subject of a client certificate the
// TLS handshake verified against the cluster CA (CommonName as user,
// Organizations as groups, as the API server reads them), else the user a
// TokenReview returns for the bearer token.
func (s *kubeletServer) authenticate(r *http.Request) (authenticationv1.UserInfo, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		subject := r.TLS.VerifiedChains[0][0].Subject
		groups := slices.Clone(subject.Organization)
		if !slices.Contains(groups, "system:authenticated") {
			groups = append(groups, "system:authenticated")
		}
		return authenticationv1.UserInfo{Username: subject.CommonName, Groups: groups}, nil
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return authenticationv1.UserInfo{}, errors.New("no client certificate and no bearer token")
	}
	review, err := s.a.cfg.Client.AuthenticationV1().TokenReviews().Create(r.Context(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: strings.TrimSpace(token)},
	}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, fmt.Errorf("token review: %w", err)
	}
	if !review.Status.Authenticated {
		return authenticationv1.UserInfo{}, fmt.Errorf("token not authenticated: %s", review.Status.Error)
	}
	return review.Status.User, nil
}

// authorize asks the API server whether user may verb the subresource of
// this Node.
func (s *kubeletServer) authorize(ctx context.Context, user authenticationv1.UserInfo, verb, subresource string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range user.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	review, err := s.a.cfg.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Version: "v1", Resource: "nodes", Subresource: subresource, Name: s.node,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return review.Status.Allowed, nil
}

// requestVerb maps the HTTP method to the API verb, as the kubelet does.
func requestVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(method)
}

// requestSubresources are the Node subresources that allow a request to
// path, in the order the kubelet checks them: /stats, /metrics, /logs,
// /spec and /checkpoint have their own; /healthz, /pods, /runningPods and
// /configz have a fine-grained one with nodes/proxy as fallback; everything
// else, /containerLogs included, needs nodes/proxy.
func requestSubresources(path string) []string {
	for prefix, sub := range map[string]string{
		"/stats": "stats", "/metrics": "metrics", "/logs": "log", "/spec": "spec", "/checkpoint": "checkpoint",
	} {
		if path == prefix || strings.HasPrefix(path, prefix+"/") {
			return []string{sub}
		}
	}
	for prefix, sub := range map[string]string{
		"/healthz": "healthz", "/pods": "pods", "/runningpods": "pods", "/configz": "configz",
	} {
		if strings.EqualFold(path, prefix) || strings.HasPrefix(strings.ToLower(path), prefix+"/") {
			return []string{sub, "proxy"}
		}
	}
	return []string{"proxy"}
}

// containerLogs serves /containerLogs/{namespace}/{pod}/{container} with the
// query parameters the API server passes on from pods/log.
func (s *kubeletServer) containerLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts, follow, previous, err := parseLogQuery(q, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ns, pod, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	path, live, err := s.a.logs.find(s.node, ns, pod, container, previous)
	switch {
	case errors.Is(err, errNoPod):
		http.Error(w, fmt.Sprintf("pod %q does not exist", pod), http.StatusNotFound)
		return
	case errors.Is(err, errNoContainer):
		http.Error(w, fmt.Sprintf("container %q not found in pod %q", container, pod), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !follow {
		live = nil
	}
	w.Header().Set("Content-Type", "text/plain")
	out := &flushWriter{w: w, rc: http.NewResponseController(w)}
	if err := readLog(r.Context(), out, path, opts, live); err != nil {
		if !out.wrote {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.a.cfg.Logf("kubelet API of node %s: logs of %s/%s/%s: %v", s.node, ns, pod, container, err)
	}
}

// parseLogQuery reads the kubelet's log parameters; now anchors
// sinceSeconds.
func parseLogQuery(q map[string][]string, now time.Time) (opts logOptions, follow, previous bool, err error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	boolean := func(k string) bool {
		if err != nil || get(k) == "" {
			return false
		}
		var b bool
		b, err = strconv.ParseBool(get(k))
		if err != nil {
			err = fmt.Errorf("query parameter %s: %q is not a boolean", k, get(k))
		}
		return b
	}
	integer := func(k string, def, lowest int64) int64 {
		if err != nil || get(k) == "" {
			return def
		}
		var n int64
		n, err = strconv.ParseInt(get(k), 10, 64)
		if err == nil && n < lowest {
			err = fmt.Errorf("query parameter %s: must be at least %d", k, lowest)
		} else if err != nil {
			err = fmt.Errorf("query parameter %s: %q is not an integer", k, get(k))
		}
		return n
	}
	follow, previous, opts.Timestamps = boolean("follow"), boolean("previous"), boolean("timestamps")
	opts.TailLines = integer("tailLines", -1, 0)
	opts.LimitBytes = integer("limitBytes", 0, 1)
	sinceSeconds := integer("sinceSeconds", 0, 1)
	if err != nil {
		return
	}
	if sinceSeconds > 0 {
		opts.Since = now.Add(-time.Duration(sinceSeconds) * time.Second)
	}
	if v := get("sinceTime"); v != "" {
		if sinceSeconds > 0 {
			return opts, false, false, errors.New("at most one of sinceTime or sinceSeconds may be specified")
		}
		if opts.Since, err = time.Parse(time.RFC3339, v); err != nil {
			return opts, false, false, fmt.Errorf("query parameter sinceTime: %q is not an RFC 3339 time", v)
		}
	}
	switch v := get("stream"); v {
	case "", "All":
	case "Stdout":
		opts.Stream = streamStdout
	case "Stderr":
		opts.Stream = streamStderr
	default:
		return opts, false, false, fmt.Errorf("query parameter stream: %q is not one of All, Stdout, Stderr", v)
	}
	if opts.Stream != "" && opts.TailLines >= 0 {
		// The API server refuses the combination too: the tail would count
		// the other stream's lines.
		return opts, false, false, errors.New("tailLines may not be combined with a single stream")
	}
	return opts, follow, previous, nil
}

// flushWriter sends every write to the client at once, so a follower sees
// lines as they are logged.
type flushWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	wrote bool
}

func (f *flushWriter) Write(p []byte) (int, error) {
	f.wrote = true
	return f.w.Write(p)
}

func (f *flushWriter) Flush() { _ = f.rc.Flush() }

// logfWriter turns the lines of a log.Logger into Logf calls.
type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
