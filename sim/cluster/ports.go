package cluster

import (
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"konductor.dev/sim/cluster/proc"
)

// portClashAttempts bounds how often a control-plane process is started
// again because a port chosen for it was taken before it could bind.
const portClashAttempts = 5

// freePort returns a port on 127.0.0.1 that was free a moment ago, for a
// child process to listen on; 0 if none was found. The port is drawn below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range), so no
// outgoing connection of a test running in parallel can be given it before
// the child binds. Another listener still can, which retryOnPortClash
// handles.
func freePort() int {
	low := ephemeralLow()
	const floor = 10000
	for range 100 {
		port := floor + rand.IntN(low-floor)
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			ln.Close()
			return port
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the first port the kernel hands to outgoing connections
// (32768 when it cannot be read).
func ephemeralLow() int {
	const fallback = 32768
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(raw))
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= 10000+1000 {
		return fallback
	}
	return low
}

// retryOnPortClash runs start, which starts the control-plane process name
// on freshly chosen ports and waits for it, again while it fails only
// because one of those ports was taken before the process bound it. The
// dead process is forgotten first (waitFor would otherwise report its exit
// again), and so is etcd's half-made data directory.
func (c *Cluster) retryOnPortClash(name string, start func() error) error {
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil || attempt == portClashAttempts || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		c.logf("%s could not bind a port chosen for it (attempt %d of %d); starting it again on other ports", name, attempt, portClashAttempts)
		c.procs = slices.DeleteFunc(c.procs, func(p *proc.Process) bool {
			if p.Name != name {
				return false
			}
			p.Stop(5 * time.Second)
			return true
		})
		if name == "etcd" {
			if err := os.RemoveAll(filepath.Join(c.Dir, "etcd")); err != nil {
				return err
			}
		}
	}
}
