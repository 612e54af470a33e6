package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// EndpointProxy reaches a Service the way kube-proxy routes it, for clusters
// without kube-proxy (the local process cluster): each request goes to the
// next endpoint of the Service's EndpointSlices that is ready and not
// terminating, on the named port. The slices are read for every request, so
// it follows the cluster as closely as the API server allows.
type EndpointProxy struct {
	Client    kubernetes.Interface
	Namespace string
	Service   string
	PortName  string
	HTTP      *http.Client
	// Scheme of the endpoint URLs; default "http" ("https" for a TLS port).
	Scheme string

	next atomic.Uint64
}

// Endpoints lists the ready, non-terminating endpoint URLs of the Service.
func (e *EndpointProxy) Endpoints(ctx context.Context) ([]string, error) {
	slices, err := e.Client.DiscoveryV1().EndpointSlices(e.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + e.Service,
	})
	if err != nil {
		return nil, fmt.Errorf("listing EndpointSlices of Service %s/%s: %w", e.Namespace, e.Service, err)
	}
	var urls []string
	for _, s := range slices.Items {
		port := int32(-1)
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == e.PortName && p.Port != nil {
				port = *p.Port
			}
		}
		if port < 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			terminating := ep.Conditions.Terminating != nil && *ep.Conditions.Terminating
			if !ready || terminating || len(ep.Addresses) == 0 {
				continue
			}
			scheme := e.Scheme
			if scheme == "" {
				scheme = "http"
			}
			urls = append(urls, scheme+"://"+net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port))))
		}
	}
	return urls, nil
}

func (e *EndpointProxy) Get(ctx context.Context, path string) (int, []byte, error) {
	urls, err := e.Endpoints(ctx)
	if err != nil {
		return 0, nil, err
	}
	if len(urls) == 0 {
		return 0, nil, fmt.Errorf("Service %s/%s has no ready endpoint on port %q", e.Namespace, e.Service, e.PortName)
	}
	c := e.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	i := e.next.Add(1) % uint64(len(urls))
	return get(ctx, c, urls[i]+path)
}
