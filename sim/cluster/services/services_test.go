package services

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"konductor.dev/sim/cluster/podnet"
	"konductor.dev/sim/internal/precond"
)

func TestProxyForwardsClusterIPToReadyEndpoints(t *testing.T) {
	if err := podnet.Supported(); err != nil {
		precond.Unavailable(t, "Service addresses need root and ip: %v", err)
	}
	g := NewWithT(t)
	ctx := context.Background()
	// Claim a network index so the Service range is ours alone.
	net0, err := podnet.NewBridged(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = net0.Destroy(ctx) })
	idx := net0.Index()

	backends := map[string]string{}
	var addrs []string
	for _, name := range []string{"one", "two", "unready"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }))
		t.Cleanup(srv.Close)
		host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		backends[name] = port
		addrs = append(addrs, host)
	}
	clusterIP := "10.214." + strconv.Itoa(idx) + ".20"
	client := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	})
	// One slice per backend: the test servers share 127.0.0.1 and differ
	// only by port.
	for name, port := range backends {
		p, _ := strconv.Atoi(port)
		_, err := client.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-" + name, Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(p))}},
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{addrs[0]},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(name != "unready")},
			}},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}

	p, err := Start(ctx, Config{Client: client, Index: idx, Logf: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		g.Expect(p.Stop(ctx)).To(Succeed())
		g.Expect(p.Addresses()).To(BeEmpty())
	})

	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	seen := map[string]int{}
	g.Eventually(func(g Gomega) {
		resp, err := hc.Get("http://" + clusterIP + "/")
		g.Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(body)]++
		g.Expect(seen).To(HaveKey("one"))
		g.Expect(seen).To(HaveKey("two"))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(seen).NotTo(HaveKey("unready"))

	hosts := string(p.Hosts("shop", "client-0", "10.213.0.9"))
	g.Expect(hosts).To(ContainSubstring(clusterIP + "\tweb.shop.svc.cluster.local web.shop.svc web.shop web\n"))
	g.Expect(hosts).To(ContainSubstring("10.213.0.9\tclient-0\n"))
	other := string(p.Hosts("other", "c", "10.213.0.10"))
	g.Expect(other).To(ContainSubstring("web.shop\n"), "no short name outside the namespace")
	g.Expect(strings.Count(other, "web")).To(Equal(3))

	// A deleted Service stops answering.
	g.Expect(client.CoreV1().Services("shop").Delete(ctx, "web", metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func() error {
		_, err := hc.Get("http://" + clusterIP + "/")
		return err
	}).WithTimeout(10 * time.Second).Should(HaveOccurred())
}
