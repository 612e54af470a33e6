package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// TestProxyTrafficReachesTheBackend runs in real time: the app's endpoint
// is a real HTTP server on 127.0.0.1, which a synctest bubble cannot wait
// on, and each replica's proxy dials it as Kong would dial a pod.
func TestProxyTrafficReachesTheBackend(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web backend saw %s %s host=%s", r.Method, r.URL.Path, r.Host)
	}))
	t.Cleanup(backend.Close)
	host, portText, _ := net.SplitHostPort(backend.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)

	kongs, err := NewKongs(replicas, KongsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kongs.Close)
	web := App{Name: "web", Host: "web.example.com", Path: "/api", Addresses: []string{host}, Port: int32(port)}
	client := fake.NewClientset(append(web.Objects(), App{Name: "other"}.Objects()...)...)
	startController(t, client, kongs.AdminURLs(), kongs.Transport())

	get := func(node int, host, path string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, "http://"+Host(node)+":"+strconv.Itoa(ProxyPort)+path, nil)
		if err != nil {
			return 0, "", err
		}
		req.Host = host
		resp, err := kongs.Transport().RoundTrip(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	for node := range replicas {
		eventually(t, 10*time.Second, "traffic through "+Host(node), func() error {
			code, body, err := get(node, "web.example.com", "/api/users?id=7")
			if err != nil {
				return err
			}
			// Routed by host and Prefix path to the Service's upstream,
			// whose only target is the EndpointSlice's endpoint; the path
			// is not stripped and the Host is preserved.
			if want := "web backend saw GET /api/users host=web.example.com"; code != http.StatusOK || body != want {
				return fmt.Errorf("HTTP %d %q, want 200 %q", code, body, want)
			}
			return nil
		})
		// Outside the Ingress's path and host, Kong matches no route.
		for _, miss := range []struct{ host, path string }{{"web.example.com", "/apix"}, {"nobody.example.com", "/api"}} {
			code, body, err := get(node, miss.host, miss.path)
			if err != nil || code != http.StatusNotFound {
				t.Errorf("%s: %s%s: HTTP %d %q (%v), want 404", Host(node), miss.host, miss.path, code, body, err)
			}
		}
	}
}
