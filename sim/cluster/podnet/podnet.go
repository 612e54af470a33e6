// Package podnet gives each pod of the local process cluster its own network
// namespace: a veth pair joins the namespace to a per-cluster bridge, and the
// pod gets an address from a private /24 that exists only on that bridge.
// Containers of one pod share localhost and ports never collide across pods.
//
// Where network namespaces are not permitted (no root, no ip tool), Loopback
// gives each pod an address 127.<n>.<m>.<k> in the host namespace instead;
// pods then share the host's ports, so two pods must not bind the same port
// on 0.0.0.0.
//
// The package shells out to iproute2's ip: it is on every machine that can
// create namespaces, and its behaviour is what an operator debugging a leak
// will see.
package podnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// Subnet prefix of pod networks: cluster index i owns 10.213.i.0/24. The range
// is used only on the bridges this package creates.
const subnetPrefix = "10.213."

// MaxClusters bounds the cluster index (one /24 each).
const MaxClusters = 200

// Sandbox is a pod's network: its address and, unless the network is in
// loopback mode, the path of its namespace (for nsenter --net=).
type Sandbox struct {
	Name   string
	IP     net.IP
	NSPath string // "" in loopback mode: the pod runs in the host namespace
}

// Network hands out sandboxes for the pods of one cluster.
type Network interface {
	// Gateway is the host's address as seen from pods; services the host
	// offers to pods (the API server forwarder) listen there.
	Gateway() net.IP
	Add(ctx context.Context, name string) (*Sandbox, error)
	Remove(ctx context.Context, sb *Sandbox) error
	// Destroy removes every sandbox and the bridge.
	Destroy(ctx context.Context) error
	// Index identifies the network on this host (bridge and namespace names).
	Index() int
}

// Bridged is a Network of namespaces on a bridge.
type Bridged struct {
	index int

	mu   sync.Mutex
	used [256]bool // host part of pod addresses; 0, 1 and 255 are reserved
	next int
	live map[string]*Sandbox
}

// BridgeName is the bridge of cluster index i.
func BridgeName(i int) string { return "kdbr" + strconv.Itoa(i) }

// ServiceCIDR is cluster index i's Service IP range. Each cluster has its
// own, because Service IPs are host addresses here.
func ServiceCIDR(i int) string { return "10.214." + strconv.Itoa(i) + ".0/24" }

// NamespacePrefix starts the names of cluster index i's pod namespaces.
func NamespacePrefix(i int) string { return "kd" + strconv.Itoa(i) + "-" }

// Supported reports whether this process may create namespaces and bridges.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	for _, tool := range []string{"ip", "nsenter", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("network namespaces need %s: %w", tool, err)
		}
	}
	return nil
}

// NewBridged claims the first free cluster index by creating its bridge (the
// kernel refuses a duplicate name, which makes the claim atomic across
// processes) and brings it up with the gateway address.
func NewBridged(ctx context.Context) (*Bridged, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	for i := 0; i < MaxClusters; i++ {
		if err := ip(ctx, "link", "add", BridgeName(i), "type", "bridge"); err != nil {
			if strings.Contains(err.Error(), "File exists") {
				continue
			}
			return nil, err
		}
		b := &Bridged{index: i, next: 2, live: map[string]*Sandbox{}}
		if err := b.setUp(ctx); err != nil {
			_ = ip(context.WithoutCancel(ctx), "link", "del", BridgeName(i))
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("all %d pod network bridges (kdbr0..) are taken; run the cluster sweep", MaxClusters)
}

func (b *Bridged) setUp(ctx context.Context) error {
	br := BridgeName(b.index)
	if err := ip(ctx, "addr", "add", b.Gateway().String()+"/24", "dev", br); err != nil {
		return err
	}
	return ip(ctx, "link", "set", br, "up")
}

func (b *Bridged) Index() int { return b.index }

func (b *Bridged) Gateway() net.IP { return b.addr(1) }

func (b *Bridged) addr(host int) net.IP {
	return net.ParseIP(subnetPrefix + strconv.Itoa(b.index) + "." + strconv.Itoa(host)).To4()
}

// Add creates namespace kd<i>-<host> with eth0 at 10.213.i.host/24 and a
// default route through the bridge, and loopback up.
func (b *Bridged) Add(ctx context.Context, name string) (*Sandbox, error) {
	host, err := b.claim()
	if err != nil {
		return nil, fmt.Errorf("pod network for %s: %w", name, err)
	}
	ns := NamespacePrefix(b.index) + strconv.Itoa(host)
	hostVeth := "kd" + strconv.Itoa(b.index) + "h" + strconv.Itoa(host)
	podVeth := "kd" + strconv.Itoa(b.index) + "p" + strconv.Itoa(host)
	sb := &Sandbox{Name: ns, IP: b.addr(host), NSPath: "/run/netns/" + ns}
	// The kernel frees a deleted namespace, and the veth pair inside it,
	// asynchronously: a pair of the index's previous owner (a cluster that
	// just stopped, or our own earlier pod) can outlive "ip netns del" for a
	// moment. The index and host number are ours now, so a device of that
	// name is such a leftover: delete it rather than fail on "File exists".
	if err := ip(ctx, "link", "del", hostVeth); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		return nil, fmt.Errorf("pod network for %s: removing a leftover %s: %w", name, hostVeth, err)
	}
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", hostVeth, "type", "veth", "peer", "name", podVeth, "netns", ns},
		{"-n", ns, "link", "set", podVeth, "name", "eth0"},
		{"-n", ns, "addr", "add", sb.IP.String() + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", b.Gateway().String()},
		{"link", "set", hostVeth, "master", BridgeName(b.index), "up"},
	}
	for _, step := range steps {
		if err := ip(ctx, step...); err != nil {
			_ = b.remove(context.WithoutCancel(ctx), ns, host)
			return nil, fmt.Errorf("pod network for %s: %w", name, err)
		}
	}
	b.mu.Lock()
	b.live[ns] = sb
	b.mu.Unlock()
	return sb, nil
}

// claim picks the next free host number, round-robin so a freed address is
// not reused at once (a stale endpoint then points at nothing, not at a
// different pod).
func (b *Bridged) claim() (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range 253 {
		h := b.next
		b.next++
		if b.next > 254 {
			b.next = 2
		}
		if !b.used[h] {
			b.used[h] = true
			return h, nil
		}
	}
	return 0, errors.New("no free pod address (253 in use)")
}

// Remove deletes the pod's namespace; the kernel deletes the veth pair with it.
func (b *Bridged) Remove(ctx context.Context, sb *Sandbox) error {
	host := int(sb.IP.To4()[3])
	return b.remove(ctx, sb.Name, host)
}

func (b *Bridged) remove(ctx context.Context, ns string, host int) error {
	err := ip(ctx, "netns", "del", ns)
	if err != nil && strings.Contains(err.Error(), "No such file") {
		err = nil
	}
	b.mu.Lock()
	b.used[host] = false
	delete(b.live, ns)
	b.mu.Unlock()
	return err
}

// Destroy removes all namespaces of this cluster index, live or leaked, and
// the bridge.
func (b *Bridged) Destroy(ctx context.Context) error {
	return DestroyIndex(ctx, b.index)
}

// DestroyIndex removes the namespaces and the bridge of cluster index i; it
// is how a crashed run's network is cleaned. Missing pieces are not errors.
func DestroyIndex(ctx context.Context, i int) error {
	var errs []error
	names, err := Namespaces(ctx)
	if err != nil {
		return err
	}
	for _, ns := range names {
		if strings.HasPrefix(ns, NamespacePrefix(i)) {
			if err := ip(ctx, "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
				errs = append(errs, err)
			}
		}
	}
	if err := ip(ctx, "link", "del", BridgeName(i)); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Namespaces lists the host's named network namespaces.
func Namespaces(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// BridgeExists reports whether cluster index i's bridge is present.
func BridgeExists(ctx context.Context, i int) bool {
	return exec.CommandContext(ctx, "ip", "link", "show", BridgeName(i)).Run() == nil
}

// IP runs the ip tool with args and returns its error output on failure.
func IP(ctx context.Context, args ...string) error { return ip(ctx, args...) }

func ip(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
