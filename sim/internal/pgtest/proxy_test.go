package pgtest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// echoServer answers each line with the same line until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// roundTrip sends one line through c and reads it back.
func roundTrip(c net.Conn, line string) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo mismatch: " + got)
	}
	return nil
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialAndRoundTrip(addr, line string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, line)
}

func TestProxyForwardsCutsAndRestores(t *testing.T) {
	p := NewProxy(t, echoServer(t))

	before := dial(t, p.Addr())
	if err := roundTrip(before, "hello"); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.Cut()
	if err := roundTrip(before, "after cut"); err == nil {
		t.Fatal("a connection open before Cut still works")
	}
	// The proxy accepts and resets at once, so a new client fails while
	// connecting or on its first exchange, without waiting for a timeout.
	if err := dialAndRoundTrip(p.Addr(), "while cut"); err == nil {
		t.Fatal("a connection made while cut works")
	}

	p.Restore()
	if err := roundTrip(dial(t, p.Addr()), "restored"); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
}

func TestProxyDSNPointsAtProxy(t *testing.T) {
	server := echoServer(t)
	p := NewProxy(t, "postgres://kong:secret@"+server+"/db1?sslmode=disable")
	params, err := ParseDSN(p.DSN())
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(p.Addr())
	want := Params{Host: host, User: "kong", Password: "secret", Database: "db1"}
	want.Port, _ = strconv.Atoi(port)
	if params != want {
		t.Fatalf("ParseDSN(proxy.DSN()) = %+v, want %+v", params, want)
	}
	if err := roundTrip(dial(t, p.Addr()), "x"); err != nil {
		t.Fatalf("proxy made from a DSN does not forward to its host: %v", err)
	}
	if NewProxy(t, server).DSN() != "" {
		t.Fatal("a proxy made from an address has a DSN")
	}
}
