package world

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"konductor.dev/sim/kong"
)

// OracleRouting: every request a ready Kong answers from a backend reaches
// the backend the Kubernetes Ingress rules pick for its host and path,
// computed here from the Ingress in the API server, independently of the
// translator: the longest matching path wins, an Exact path only matches
// itself, a Prefix path matches whole path elements (/foo matches /foo and
// /foo/bar, not /foobar), and at equal length Exact comes before Prefix.
// A 404 is not judged: the Kong may not serve the Ingress yet, which the
// traffic oracle covers for the apps' own hosts.
const OracleRouting = "routing"

// routingHost is the host of the routing Ingress (Config.PathRouting).
const routingHost = "paths.example.test"

// routingIngressName names the routing Ingress.
const routingIngressName = "paths"

// routingIngress sends paths of one host to apps 0-2: everything to app 0,
// the Prefix /foo to app 1, the Exact /bar to app 2.
func routingIngress() runtime.Object {
	prefix, exact := networkingv1.PathTypePrefix, networkingv1.PathTypeExact
	path := func(p string, typ *networkingv1.PathType, app int) networkingv1.HTTPIngressPath {
		return networkingv1.HTTPIngressPath{Path: p, PathType: typ, Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: appName(app), Port: networkingv1.ServiceBackendPort{Number: 80}},
		}}
	}
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: routingIngressName},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ref(ingressClass),
			Rules: []networkingv1.IngressRule{{
				Host: routingHost,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{
						path("/", &prefix, 0),
						path("/foo", &prefix, 1),
						path("/bar", &exact, 2),
					},
				}},
			}},
		},
	}
}

// routingProbes are the paths sent to the routing host: each path itself,
// below it, and a longer path element that only a raw string prefix would
// match.
var routingProbes = []string{"/", "/foo", "/foo/", "/foo/x", "/foobar", "/bar", "/bar/", "/bar/x", "/barx"}

// ingressBackend returns the Service the Ingress spec sends host+path to,
// "" when no rule matches.
func ingressBackend(ing *networkingv1.Ingress, host, path string) string {
	best, bestLen, bestExact := "", -1, false
	for _, rule := range ing.Spec.Rules {
		if rule.Host != host || rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service == nil || p.PathType == nil {
				continue
			}
			exact := *p.PathType == networkingv1.PathTypeExact
			var match bool
			switch *p.PathType {
			case networkingv1.PathTypeExact:
				match = path == p.Path
			case networkingv1.PathTypePrefix:
				match = prefixMatches(p.Path, path)
			}
			if !match {
				continue
			}
			if n := len(p.Path); n > bestLen || n == bestLen && exact && !bestExact {
				best, bestLen, bestExact = p.Backend.Service.Name, n, exact
			}
		}
	}
	return best
}

// prefixMatches is the Prefix path type: element-wise, ignoring a
// trailing slash of either.
func prefixMatches(prefix, path string) bool {
	pe := splitPath(prefix)
	xe := splitPath(path)
	if len(pe) > len(xe) {
		return false
	}
	for i := range pe {
		if pe[i] != xe[i] {
			return false
		}
	}
	return true
}

func splitPath(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// probeRouting sends every routing probe through n (slot s) and judges the
// answering app against the Ingress in the API server.
func (w *World) probeRouting(ctx context.Context, s *kongSlot, n *kong.Node) {
	obj, ok := w.api.Get(ingresses, appNamespace, routingIngressName)
	if !ok {
		w.violate("world", "routing Ingress %s/%s not found", appNamespace, routingIngressName)
		return
	}
	ing := obj.(*networkingv1.Ingress)
	for _, path := range routingProbes {
		code, app := probePath(ctx, n, routingHost, path)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.traffic.Requests++
		w.mu.Unlock()
		if code == http.StatusNotFound {
			continue
		}
		want := ingressBackend(ing, routingHost, path)
		if code != http.StatusOK || app != want {
			// Each wrong answer is reported once per Kong incarnation
			// and path: it repeats at every probe until fixed.
			key := fmt.Sprintf("%s|%p|%s|%d|%s", kongPod(s.index), n, path, code, app)
			w.mu.Lock()
			w.traffic.Failures++
			seen := w.misrouted[key]
			if w.misrouted == nil {
				w.misrouted = map[string]bool{}
			}
			w.misrouted[key] = true
			w.mu.Unlock()
			if seen {
				continue
			}
			if want == "" {
				want = "404"
			}
			w.violate(OracleRouting, "%s (ready) answered %d %q for http://%s%s; the Ingress rules send it to %s",
				kongPod(s.index), code, app, routingHost, path, want)
		}
	}
}

// probePath sends GET http://host+path through a node's proxy and returns
// the status and the answering app.
func probePath(ctx context.Context, n *kong.Node, host, path string) (int, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+path, nil)
	resp, err := kong.NewInMemoryTransport(n.Proxy()).RoundTrip(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
