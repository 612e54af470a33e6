package podnet

import (
	"context"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"konductor.dev/sim/internal/precond"
)

func TestBridgedSandboxes(t *testing.T) {
	if err := Supported(); err != nil {
		precond.Unavailable(t, "network namespaces unavailable here (%v); the loopback fallback is tested instead", err)
	}
	ctx := context.Background()
	b, err := NewBridged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Destroy(ctx); err != nil {
			t.Error(err)
		}
		if BridgeExists(ctx, b.Index()) {
			t.Errorf("bridge %s left after Destroy", BridgeName(b.Index()))
		}
	})

	one, err := b.Add(ctx, "ns/one")
	if err != nil {
		t.Fatal(err)
	}
	two, err := b.Add(ctx, "ns/two")
	if err != nil {
		t.Fatal(err)
	}
	if one.IP.Equal(two.IP) {
		t.Fatalf("both sandboxes got %s", one.IP)
	}
	// The same port is free in each namespace, and the host reaches both.
	for _, sb := range []*Sandbox{one, two} {
		out, err := exec.Command("nsenter", "--net="+sb.NSPath, "ip", "-4", "-o", "addr", "show", "eth0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), sb.IP.String()+"/24") {
			t.Errorf("eth0 in %s: %s %v", sb.Name, out, err)
		}
	}
	names, _ := Namespaces(ctx)
	if !slices.Contains(names, one.Name) || !slices.Contains(names, two.Name) {
		t.Errorf("namespaces %v lack %s or %s", names, one.Name, two.Name)
	}
	if err := b.Remove(ctx, one); err != nil {
		t.Fatal(err)
	}
	names, _ = Namespaces(ctx)
	if slices.Contains(names, one.Name) {
		t.Errorf("namespace %s left after Remove", one.Name)
	}
	three, err := b.Add(ctx, "ns/three")
	if err != nil {
		t.Fatal(err)
	}
	if three.IP.Equal(one.IP) {
		t.Errorf("a freed address was reused at once: %s", three.IP)
	}
}

func TestLoopbackAddresses(t *testing.T) {
	l := NewLoopback(3)
	ctx := context.Background()
	seen := map[string]bool{}
	var first *Sandbox
	for i := range 300 {
		sb, err := l.Add(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = sb
		}
		if !sb.IP.IsLoopback() || sb.IP.To4()[1] != 103 || seen[sb.IP.String()] {
			t.Fatalf("address %s: want a fresh 127.103.x.y", sb.IP)
		}
		seen[sb.IP.String()] = true
	}
	if err := l.Remove(ctx, first); err != nil {
		t.Fatal(err)
	}
	if !l.Gateway().Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("Gateway = %s", l.Gateway())
	}
}
