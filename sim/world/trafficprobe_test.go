package world

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"konductor.dev/sim/kong"
)

// A probe reports what the proxy answered: the app whose backend served
// the request, a misrouted app's wrong backend, Kong's 404 for a host
// without a route, and the key-auth refusal of a request without the key.
func TestProbeReportsTheProxysAnswer(t *testing.T) {
	n, err := kong.NewNode(kong.Options{Logger: slog.New(slog.DiscardHandler), ProxyTransport: backendTransport{}})
	if err != nil {
		t.Fatal(err)
	}
	// app-0 and app-1 route to their own backends, app-2 to app-0's,
	// app-3 is behind key-auth; app-4 has no route.
	route := func(app int) string { return `{"name":"r` + appName(app) + `","hosts":["` + appHost(app) + `"]}` }
	service := func(app int, extra string, routes ...string) string {
		return `{"name":"s` + appName(app) + `","host":"` + appIP(app) + `","port":8080` + extra + `,"routes":[` + strings.Join(routes, ",") + `]}`
	}
	config := `{"_format_version":"3.0","services":[` +
		service(0, "", route(0), route(2)) + "," + service(1, "", route(1)) + "," +
		service(3, `,"plugins":[{"name":"key-auth"}]`, route(3)) +
		`],"consumers":[{"username":"u","keyauth_credentials":[{"key":"` + authKey + `"}]}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://kong:8001/config", strings.NewReader(config))
	req.Header.Set("Content-Type", "application/json")
	resp, err := kong.NewInMemoryTransport(n.Admin()).RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /config: %v %v", resp, err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		app      int
		withKey  bool
		wantCode int
		wantBody string
	}{
		{0, false, http.StatusOK, appName(0)},
		{1, false, http.StatusOK, appName(1)},
		{2, false, http.StatusOK, appName(0)}, // misrouted: the oracle sees app-0 answer for app-2
		{3, true, http.StatusOK, appName(3)},
		{4, false, http.StatusNotFound, ""},
	} {
		code, body := probe(ctx, n, tc.app, tc.withKey)
		if code != tc.wantCode || (tc.wantBody != "" && body != tc.wantBody) {
			t.Errorf("probe of %s = %d %q, want %d %q", appHost(tc.app), code, body, tc.wantCode, tc.wantBody)
		}
	}
	if code, body := probe(ctx, n, 3, false); code != http.StatusUnauthorized || strings.Contains(body, appName(3)) {
		t.Errorf("probe of %s without its key = %d %q, want 401 from Kong", appHost(3), code, body)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if code, body := probe(cancelled, n, 0, false); code != 0 || body != context.Canceled.Error() {
		t.Errorf("probe with its context ended = %d %q, want 0 and the context's error", code, body)
	}
}
