package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"konductor.dev/sim/cluster/podnet"
	"konductor.dev/sim/cluster/proc"
)

// The owner file of a state directory names the process that runs the
// cluster: "<pid> <start time>". The start time tells a live owner from a
// reused pid.
const ownerFile = "owner"

// claimDir creates dir for this process, refusing if a live owner holds it.
func claimDir(dir string) error {
	if pid, ok := liveOwner(dir); ok {
		return fmt.Errorf("cluster %s is already running (owner pid %d, state %s)", filepath.Base(dir), pid, dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	start, err := proc.StartTime(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %s\n", os.Getpid(), start), 0o600)
}

// liveOwner reports the pid of dir's owner if that process still runs.
func liveOwner(dir string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, false
	}
	return pid, proc.Alive(pid, f[1])
}

// readNetwork returns the pod network index recorded in dir and whether it
// is a bridge.
func readNetwork(dir string) (index int, bridged bool, ok bool) {
	data, err := os.ReadFile(filepath.Join(dir, "network"))
	if err != nil {
		return 0, false, false
	}
	if _, err := fmt.Sscanf(string(data), "%d %t", &index, &bridged); err != nil {
		return 0, false, false
	}
	return index, bridged, true
}

// Sweep removes every cluster under root whose owner is gone: it kills the
// cluster's marked processes, deletes its namespaces and bridge, and removes
// its state directory. It returns the names of the clusters it removed.
func Sweep(ctx context.Context, root string, logf func(string, ...any)) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var swept []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if _, alive := liveOwner(dir); alive {
			continue
		}
		if err := Remove(ctx, dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if logf != nil {
			logf("removed stale cluster %s", e.Name())
		}
		swept = append(swept, e.Name())
	}
	return swept, errors.Join(errs...)
}

// Remove tears down the cluster whose state is dir without asking its
// owner: processes, pod network, files. Use it on clusters whose owner died.
func Remove(ctx context.Context, dir string) error {
	name := filepath.Base(dir)
	var errs []error
	errs = append(errs, proc.KillMarked(name, 10*time.Second))
	if idx, bridged, ok := readNetwork(dir); ok && bridged {
		errs = append(errs, podnet.DestroyIndex(ctx, idx))
	}
	errs = append(errs, unmountUnder(dir))
	errs = append(errs, os.RemoveAll(dir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cluster %s: %w", name, err)
	}
	return nil
}

// unmountUnder is a guard: pod mounts live in private mount namespaces and
// die with their processes, so nothing should be mounted under dir; if
// something is (a kernel without mount namespaces), RemoveAll would fail.
func unmountUnder(dir string) error {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			return fmt.Errorf("%s is still mounted", f[1])
		}
	}
	return nil
}

// ReadyFile appears in a cluster's state directory once MarkReady is called.
const ReadyFile = "ready"

// MarkReady tells other processes (localcluster up) that the cluster serves.
func (c *Cluster) MarkReady() error {
	return os.WriteFile(filepath.Join(c.Dir, ReadyFile), nil, 0o600)
}

// Running reports the owner pid of the cluster whose state is dir, if the
// owner still runs.
func Running(dir string) (int, bool) { return liveOwner(dir) }
