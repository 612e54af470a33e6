package harness

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestLeaderPod(t *testing.T) {
	cm := func(annotation string) *corev1.ConfigMap {
		c := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: "ingress-controller-leader-kong"}}
		if annotation != "" {
			c.Annotations = map[string]string{"control-plane.alpha.kubernetes.io/leader": annotation}
		}
		return c
	}
	tests := []struct {
		name, annotation, want, wantErr string
	}{
		{"held", `{"holderIdentity":"konductor-7d9f-abcde_0123456789abcdef","leaseDurationSeconds":15,"leaderTransitions":3}`, "konductor-7d9f-abcde", ""},
		{"released", `{"holderIdentity":"","leaderTransitions":3}`, "", "released"},
		{"no annotation", "", "", "no annotation"},
		{"not json", `{`, "", "annotation control-plane.alpha.kubernetes.io/leader"},
		{"foreign identity", `{"holderIdentity":"somebody"}`, "", "not <pod>_<suffix>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LeaderPod(cm(tt.annotation))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LeaderPod = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("LeaderPod = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestTrafficCountsFailures runs the loop against a server that fails
// every third request, stopping after a fixed number of requests.
func TestTrafficCountsFailures(t *testing.T) {
	var n atomic.Int64
	stopAt := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if i == 9 {
			close(stopAt)
		}
		if i%3 == 0 {
			http.Error(w, "no Route matched", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	tr := StartTraffic(context.Background(), URLProxy{Base: srv.URL}, TrafficOptions{Path: "/", Interval: time.Millisecond})
	<-stopAt
	res := tr.Stop()
	if res.Sent < 9 || res.OK+res.Failed != res.Sent {
		t.Fatalf("result %s: want at least 9 requests, each counted once", res)
	}
	if res.Failed != res.Sent/3 {
		t.Fatalf("result %s: want every third request failed", res)
	}
	if !strings.Contains(res.Failures[0], "status 404: no Route matched") {
		t.Fatalf("first failure %q does not say what failed", res.Failures[0])
	}
	if again := tr.Stop(); again.Sent != res.Sent {
		t.Fatalf("second Stop changed the result: %s vs %s", again, res)
	}
}

func TestTrafficStopsAtMaxDuration(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	tr := StartTraffic(context.Background(), URLProxy{Base: srv.URL}, TrafficOptions{Interval: time.Millisecond, MaxDuration: 20 * time.Millisecond})
	select {
	case <-tr.done:
	case <-time.After(10 * time.Second):
		t.Fatal("loop outlived MaxDuration by far")
	}
	if res := tr.Stop(); res.Sent == 0 || res.Failed != 0 {
		t.Fatalf("result %s", res)
	}
}

// TestEndpointProxy routes over ready endpoints only, as kube-proxy would.
func TestEndpointProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(r.URL.Path))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	port := int32(ln.Addr().(*net.TCPAddr).Port)

	yes, no := true, false
	name, other := "proxy", "admin"
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: "kong-proxy-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "kong-proxy"}},
		Ports:      []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			// Not ready and terminating endpoints would fail the request.
			{Addresses: []string{"127.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
			{Addresses: []string{"127.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes, Terminating: &yes}},
		},
	}
	otherPort := int32(1)
	unrelated := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: "kong-admin-xyz", Labels: map[string]string{discoveryv1.LabelServiceName: "kong-admin"}},
		Ports:      []discoveryv1.EndpointPort{{Name: &other, Port: &otherPort}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.4"}}},
	}
	p := &EndpointProxy{Client: fake.NewClientset(slice, unrelated), Namespace: "kong", Service: "kong-proxy", PortName: "proxy"}
	for range 5 {
		status, body, err := p.Get(context.Background(), "/echo")
		if err != nil || status != http.StatusOK || string(body) != "/echo" {
			t.Fatalf("Get = %d %q %v", status, body, err)
		}
	}
	if hits.Load() != 5 {
		t.Fatalf("server saw %d requests, want 5", hits.Load())
	}

	empty := &EndpointProxy{Client: fake.NewClientset(unrelated), Namespace: "kong", Service: "kong-proxy", PortName: "proxy"}
	if _, _, err := empty.Get(context.Background(), "/"); err == nil || !strings.Contains(err.Error(), "no ready endpoint") {
		t.Fatalf("Get without endpoints = %v, want a 'no ready endpoint' error", err)
	}
}

// TestDockerReady fakes the docker CLI with shell scripts.
func TestDockerReady(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, docker, wantErr string
	}{
		{"engine answers", script("up", "echo 28.2.2"), ""},
		{"engine down", script("down", "echo 'Cannot connect to the Docker daemon' >&2; exit 1"), "Cannot connect to the Docker daemon"},
		{"no server version", script("empty", "exit 0"), "no server version"},
		{"not installed", filepath.Join(dir, "missing"), "not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DockerReady(context.Background(), tt.docker)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrNoDocker) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("DockerReady = %v; want ErrNoDocker containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestKindConfig(t *testing.T) {
	k := NewKindCluster("")
	k.HostProxyPort, k.HostProxyTLSPort = 31999, 31443
	cfg := k.Config()
	if len(cfg.Nodes) != 3 {
		t.Fatalf("%d nodes, want a control plane and two workers", len(cfg.Nodes))
	}
	zones := map[string]bool{}
	for _, n := range cfg.Nodes {
		zones[n.Labels[corev1.LabelTopologyZone]] = true
	}
	if len(zones) != 3 {
		t.Errorf("zones %v, want one per node", zones)
	}
	pm := cfg.Nodes[0].ExtraPortMappings
	if len(pm) != 2 || pm[0].ContainerPort != ProxyNodePort || pm[0].HostPort != 31999 || pm[0].ListenAddress != "127.0.0.1" ||
		pm[1].ContainerPort != ProxyTLSNodePort || pm[1].HostPort != 31443 || pm[1].ListenAddress != "127.0.0.1" {
		t.Errorf("port mappings %+v, want NodePort %d on 127.0.0.1:31999 and %d on 127.0.0.1:31443", pm, ProxyNodePort, ProxyTLSNodePort)
	}
}
