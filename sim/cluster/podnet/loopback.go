package podnet

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Loopback is the fallback Network for hosts without namespaces: each pod
// gets its own 127.x.y.z address in the host namespace (all of 127/8 is
// routed to lo on Linux). Pods share the host's ports.
type Loopback struct {
	index int

	mu   sync.Mutex
	next uint32
	used map[uint32]bool
}

// NewLoopback serves cluster index i pod addresses from 127.(100+i).0.0/16.
func NewLoopback(i int) *Loopback {
	return &Loopback{index: i, next: 2, used: map[uint32]bool{}}
}

func (l *Loopback) Index() int { return l.index }

// Gateway is 127.0.0.1: pods are in the host namespace.
func (l *Loopback) Gateway() net.IP { return net.IPv4(127, 0, 0, 1).To4() }

func (l *Loopback) Add(_ context.Context, name string) (*Sandbox, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range 65000 {
		n := l.next
		l.next++
		if l.next > 65000 {
			l.next = 2
		}
		if !l.used[n] {
			l.used[n] = true
			return &Sandbox{Name: name, IP: net.IPv4(127, byte(100+l.index), byte(n>>8), byte(n)).To4()}, nil
		}
	}
	return nil, errors.New("no free loopback pod address")
}

func (l *Loopback) Remove(_ context.Context, sb *Sandbox) error {
	ip := sb.IP.To4()
	l.mu.Lock()
	delete(l.used, uint32(ip[2])<<8|uint32(ip[3]))
	l.mu.Unlock()
	return nil
}

func (l *Loopback) Destroy(context.Context) error { return nil }
