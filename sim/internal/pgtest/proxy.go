package pgtest

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy forwards loopback TCP connections to a database server and can cut
// them, which looks to clients like the database going away.
type Proxy struct {
	target string // host:port of the server
	dsn    string // the DSN given to NewProxy, if any
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	cut    bool
	closed bool
	conns  map[net.Conn]struct{}
}

// NewProxy starts a proxy in front of dsnOrAddr, a postgres:// URL or a
// host:port, and stops it when t ends.
func NewProxy(t testing.TB, dsnOrAddr string) *Proxy {
	t.Helper()
	p := &Proxy{conns: map[net.Conn]struct{}{}}
	if strings.Contains(dsnOrAddr, "://") {
		u, err := url.Parse(dsnOrAddr)
		if err != nil || u.Host == "" {
			t.Fatalf("pgtest: NewProxy: %q is neither a DSN URL nor host:port", dsnOrAddr)
		}
		p.dsn, p.target = dsnOrAddr, u.Host
		if u.Port() == "" {
			p.target = net.JoinHostPort(u.Hostname(), "5432")
		}
	} else {
		if _, _, err := net.SplitHostPort(dsnOrAddr); err != nil {
			t.Fatalf("pgtest: NewProxy: %q is neither a DSN URL nor host:port: %v", dsnOrAddr, err)
		}
		p.target = dsnOrAddr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgtest: NewProxy: %v", err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// DSN is the DSN given to NewProxy with its host and port replaced by the
// proxy's. It is empty when the proxy was made from a bare address.
func (p *Proxy) DSN() string {
	if p.dsn == "" {
		return ""
	}
	u, _ := url.Parse(p.dsn) // parsed once in NewProxy already
	u.Host = p.Addr()
	return u.String()
}

// Cut drops every open connection and refuses new ones until Restore.
// Refused connections are reset at once, so clients fail fast, as against a
// stopped server, rather than time out.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		reset(c)
	}
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		reset(c)
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(client) {
			reset(client)
			continue
		}
		p.wg.Add(1)
		go p.forward(client)
	}
}

// track records c so Cut can drop it, unless the proxy is cut or closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		p.untrack(client)
		return
	}
	// A Cut during the dial must drop this pair too.
	if !p.track(server) {
		server.Close()
		p.untrack(client)
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(server, client)
	go pipe(client, server)
	<-done
	// One side ended: close both so the other copy ends as well.
	p.untrack(client, server)
	<-done
}

// reset closes c with a TCP reset rather than an orderly shutdown.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) String() string { return fmt.Sprintf("pgtest.Proxy(%s -> %s)", p.Addr(), p.target) }
