// Package services makes Services of the local process cluster reachable by
// ClusterIP and by DNS name, as kube-proxy and CoreDNS would.
//
// ClusterIPs: every Service IP becomes a host address on the cluster's pod
// bridge (these kernels have no dummy interfaces), and a userspace TCP forwarder listens on each ClusterIP:port
// and connects to a ready endpoint from the Service's EndpointSlices, round
// robin. Pods reach the host through their default route, so no netfilter
// rules and no IP forwarding are needed. We chose this over kube-proxy
// (nftables mode) because kube-proxy programs one fixed table in the host's
// netfilter, so two clusters on one host (parallel test packages) would
// overwrite each other, and because the nft tool is not on these machines.
// Only TCP is forwarded.
//
// DNS: Hosts renders an /etc/hosts for a pod's namespace with
// <svc>.<ns>.svc.cluster.local, <svc>.<ns>.svc, <svc>.<ns> and, within the
// namespace, <svc>. The node agent bind-mounts it over the pod's /etc/hosts
// and rewrites it in place when Services change. Headless Services resolve
// to their ready endpoints.
package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"konductor.dev/sim/cluster/podnet"
)

// Config wires a Proxy.
type Config struct {
	Client kubernetes.Interface
	// Index is the cluster's pod network index; the Service addresses go on
	// its bridge, podnet.BridgeName(Index), which must exist.
	Index int
	// OnChange is called (from one goroutine) when Services or endpoints
	// change, e.g. to rewrite hosts files.
	OnChange func()
	Logf     func(format string, args ...any)
}

// Proxy forwards Service traffic and knows the Service names.
type Proxy struct {
	cfg      Config
	link     string
	services listersv1.ServiceLister
	slices   discoverylisters.EndpointSliceLister
	changed  chan struct{}
	cancel   context.CancelFunc
	done     sync.WaitGroup

	mu        sync.Mutex
	listeners map[string]*listener // by "ip:port"
	addrs     map[string]bool
	next      map[string]int // round-robin position per listener
}

type listener struct {
	ln      net.Listener
	service string // namespace/name
	port    corev1.ServicePort
}

// Start begins following Services.
func Start(ctx context.Context, cfg Config) (*Proxy, error) {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	p := &Proxy{
		cfg: cfg, link: podnet.BridgeName(cfg.Index), changed: make(chan struct{}, 1),
		listeners: map[string]*listener{}, addrs: map[string]bool{}, next: map[string]int{},
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	svcInformer := factory.Core().V1().Services()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	p.services, p.slices = svcInformer.Lister(), sliceInformer.Lister()
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInformer.Informer(), sliceInformer.Informer()} {
		if _, err := inf.AddEventHandler(notify); err != nil {
			cancel()
			return nil, err
		}
	}
	factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), svcInformer.Informer().HasSynced, sliceInformer.Informer().HasSynced) {
		cancel()
		factory.Shutdown()
		return nil, errors.New("services: informers did not sync")
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		defer factory.Shutdown()
		p.loop(runCtx)
	}()
	p.sync(ctx)
	return p, nil
}

func (p *Proxy) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *Proxy) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.changed:
			p.sync(ctx)
			if p.cfg.OnChange != nil {
				p.cfg.OnChange()
			}
		}
	}
}

// sync makes the listeners and addresses match the Services.
func (p *Proxy) sync(ctx context.Context) {
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		return
	}
	want := map[string]*listener{}
	wantAddrs := map[string]bool{}
	for _, svc := range svcs {
		ip := svc.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		if svc.Namespace == "default" && svc.Name == "kubernetes" {
			continue // the API server is reached through the node agent's forwarder
		}
		wantAddrs[ip] = true
		for _, port := range svc.Spec.Ports {
			if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
				continue
			}
			key := net.JoinHostPort(ip, strconv.Itoa(int(port.Port)))
			want[key] = &listener{service: svc.Namespace + "/" + svc.Name, port: port}
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for key, l := range p.listeners {
		if w, ok := want[key]; !ok || w.service != l.service {
			_ = l.ln.Close()
			delete(p.listeners, key)
		}
	}
	for ip := range wantAddrs {
		if !p.addrs[ip] {
			if err := podnet.IP(ctx, "addr", "add", ip+"/32", "dev", p.link); err != nil && !strings.Contains(err.Error(), "File exists") {
				p.cfg.Logf("services: %v", err)
				continue
			}
			p.addrs[ip] = true
		}
	}
	for ip := range p.addrs {
		if !wantAddrs[ip] {
			_ = podnet.IP(ctx, "addr", "del", ip+"/32", "dev", p.link)
			delete(p.addrs, ip)
		}
	}
	for key, w := range want {
		if l, ok := p.listeners[key]; ok {
			l.port = w.port
			continue
		}
		ln, err := net.Listen("tcp", key)
		if err != nil {
			p.cfg.Logf("services: listen %s for %s: %v", key, w.service, err)
			continue
		}
		w.ln = ln
		p.listeners[key] = w
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			p.serve(key, w)
		}()
	}
}

func (p *Proxy) serve(key string, l *listener) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(key, l, conn)
	}
}

// forward connects conn to a ready endpoint, trying each once.
func (p *Proxy) forward(key string, l *listener, conn net.Conn) {
	defer conn.Close()
	p.mu.Lock()
	port := l.port
	p.mu.Unlock()
	targets := p.endpoints(l.service, port)
	if len(targets) == 0 {
		return // as kube-proxy rejects: no ready endpoint
	}
	p.mu.Lock()
	start := p.next[key]
	p.next[key] = start + 1
	p.mu.Unlock()
	for i := range targets {
		target := targets[(start+i)%len(targets)]
		out, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			continue
		}
		defer out.Close()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(out, conn); closeWrite(out); done <- struct{}{} }()
		go func() { _, _ = io.Copy(conn, out); closeWrite(conn); done <- struct{}{} }()
		<-done
		<-done
		return
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// endpoints lists "ip:port" of the ready endpoints serving port of service.
func (p *Proxy) endpoints(service string, port corev1.ServicePort) []string {
	ns, name, _ := strings.Cut(service, "/")
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
	list, err := p.slices.EndpointSlices(ns).List(sel)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range list {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var target int32
		for _, sp := range s.Ports {
			if sp.Port != nil && ptrString(sp.Name) == port.Name {
				target = *sp.Port
			}
		}
		if target == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(int(target))))
			}
		}
	}
	sort.Strings(out)
	return out
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Hosts renders the /etc/hosts of a pod in namespace, named hostname with
// address podIP.
func (p *Proxy) Hosts(namespace, hostname, podIP string) []byte {
	var b strings.Builder
	b.WriteString("# written by the konductor process kubelet\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if podIP != "" {
		fmt.Fprintf(&b, "%s\t%s\n", podIP, hostname)
	}
	if p == nil {
		return []byte(b.String())
	}
	svcs, _ := p.services.List(labels.Everything())
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	for _, svc := range svcs {
		names := []string{
			svc.Name + "." + svc.Namespace + ".svc.cluster.local",
			svc.Name + "." + svc.Namespace + ".svc",
			svc.Name + "." + svc.Namespace,
		}
		if svc.Namespace == namespace {
			names = append(names, svc.Name)
		}
		var ips []string
		switch {
		case svc.Spec.ClusterIP == corev1.ClusterIPNone:
			for _, ep := range p.endpoints(svc.Namespace+"/"+svc.Name, firstPort(svc)) {
				host, _, _ := net.SplitHostPort(ep)
				if !slices.Contains(ips, host) {
					ips = append(ips, host)
				}
			}
		case svc.Spec.ClusterIP != "":
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			fmt.Fprintf(&b, "%s\t%s\n", ip, strings.Join(names, " "))
		}
	}
	return []byte(b.String())
}

func firstPort(svc *corev1.Service) corev1.ServicePort {
	if len(svc.Spec.Ports) > 0 {
		return svc.Spec.Ports[0]
	}
	return corev1.ServicePort{}
}

// Stop closes every listener and removes the Service addresses.
func (p *Proxy) Stop(ctx context.Context) error {
	p.cancel()
	p.mu.Lock()
	for key, l := range p.listeners {
		_ = l.ln.Close()
		delete(p.listeners, key)
	}
	var errs []error
	for ip := range p.addrs {
		if err := podnet.IP(ctx, "addr", "del", ip+"/32", "dev", p.link); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			errs = append(errs, err)
		}
		delete(p.addrs, ip)
	}
	p.mu.Unlock()
	p.done.Wait()
	return errors.Join(errs...)
}

// Addresses lists the Service IPs currently on the bridge.
func (p *Proxy) Addresses() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.addrs))
	for ip := range p.addrs {
		out = append(out, ip)
	}
	sort.Strings(out)
	return out
}
