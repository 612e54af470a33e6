package proxy

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// defaultTargetPort is the port of a target given without one, as in Kong.
const defaultTargetPort = 8000

// peer is one address a request can be sent to.
type peer struct {
	addr string // host:port to dial
	// hostHTTP and hostHTTPS are the Host header for this peer when the
	// service speaks http or https: the port is left out when it is the
	// scheme's default, as Kong does.
	hostHTTP, hostHTTPS string
}

func newPeer(host string, port int) peer {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	p := peer{addr: addr, hostHTTP: addr, hostHTTPS: addr}
	bare := host
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		bare = "[" + host + "]"
	}
	if port == 80 {
		p.hostHTTP = bare
	}
	if port == 443 {
		p.hostHTTPS = bare
	}
	return p
}

func (p *peer) hostHeader(scheme string) string {
	if scheme == "https" {
		return p.hostHTTPS
	}
	return p.hostHTTP
}

// balancer spreads requests over an upstream's targets by smooth weighted
// round-robin: over any window of sum(weights) picks each target gets its
// weight's share, interleaved rather than in bursts. Targets of weight 0 are
// never picked.
type balancer struct {
	mu      sync.Mutex
	peers   []peer
	weights []int
	current []int
	total   int
	// signature identifies the weighted targets, to tell whether an update
	// changed them.
	signature string
}

func newBalancer(u Upstream) (*balancer, error) {
	b := &balancer{}
	for i, t := range u.Targets {
		host, port, err := parseTarget(t.Target)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: targets[%d]: %w", u.Name, i, err)
		}
		if t.Weight < 0 || t.Weight > 65535 {
			return nil, fmt.Errorf("upstream %q: targets[%d]: weight %d outside 0-65535", u.Name, i, t.Weight)
		}
		if t.Weight == 0 {
			continue
		}
		b.peers = append(b.peers, newPeer(host, port))
		b.weights = append(b.weights, t.Weight)
		b.total += t.Weight
		b.signature += fmt.Sprintf("%s=%d;", b.peers[len(b.peers)-1].addr, t.Weight)
	}
	b.current = make([]int, len(b.peers))
	return b, nil
}

// next returns the peer to use, or false when no target has a weight.
func (b *balancer) next() (*peer, bool) {
	if len(b.peers) == 0 {
		return nil, false
	}
	if len(b.peers) == 1 {
		return &b.peers[0], true
	}
	b.mu.Lock()
	best := 0
	for i, w := range b.weights {
		b.current[i] += w
		if b.current[i] > b.current[best] {
			best = i
		}
	}
	b.current[best] -= b.total
	b.mu.Unlock()
	return &b.peers[best], true
}

// parseTarget reads "host:port", "host" (port 8000) or "[v6]:port".
func parseTarget(target string) (string, int, error) {
	host, portText, err := net.SplitHostPort(target)
	if err != nil {
		if ae, ok := err.(*net.AddrError); ok && ae.Err == "missing port in address" {
			host, portText = target, strconv.Itoa(defaultTargetPort)
			if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
				host = host[1 : len(host)-1]
			}
		} else {
			return "", 0, fmt.Errorf("invalid target %q: %v", target, err)
		}
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 || host == "" {
		return "", 0, fmt.Errorf("invalid target %q: want host:port", target)
	}
	return host, port, nil
}
