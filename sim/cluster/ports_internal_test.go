package cluster

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		port := freePort()
		if port < 10000 || port >= low {
			t.Fatalf("freePort() = %d; want it in [10000, %d)", port, low)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d from freePort cannot be bound: %v", port, err)
		}
		ln.Close()
	}
}

func TestRetryOnPortClash(t *testing.T) {
	clash := errors.New("waiting for etcd: etcd exited; log tail: listen tcp 127.0.0.1:45665: bind: address already in use")
	other := errors.New("waiting for etcd: etcd exited; log tail: permission denied")
	tests := []struct {
		name      string
		results   []error // what each start returns, in turn
		wantCalls int
		wantErr   error
	}{
		{name: "first start works", results: []error{nil}, wantCalls: 1},
		{name: "two clashes, then it binds", results: []error{clash, clash, nil}, wantCalls: 3},
		{name: "another failure is not retried", results: []error{other}, wantCalls: 1, wantErr: other},
		{name: "a clash after another failure is not reached", results: []error{other, nil}, wantCalls: 1, wantErr: other},
		{name: "clashing every time gives up", results: []error{clash, clash, clash, clash, clash, nil}, wantCalls: portClashAttempts, wantErr: clash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cluster{Dir: t.TempDir(), logf: t.Logf}
			if err := os.MkdirAll(filepath.Join(c.Dir, "etcd", "member"), 0o755); err != nil {
				t.Fatal(err)
			}
			calls := 0
			err := c.retryOnPortClash("etcd", func() error {
				calls++
				return tt.results[calls-1]
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) {
				t.Fatalf("start called %d times, error %v; want %d times, error %v", calls, err, tt.wantCalls, tt.wantErr)
			}
			_, statErr := os.Stat(filepath.Join(c.Dir, "etcd"))
			if retried := tt.wantCalls > 1; retried != os.IsNotExist(statErr) {
				t.Fatalf("etcd data directory after %d starts: stat error %v; want it removed exactly when a start was retried", calls, statErr)
			}
		})
	}
}
