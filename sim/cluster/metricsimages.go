package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"konductor.dev/sim/cluster/node"
)

// MetricsBinDirEnv names a directory of prebuilt metrics binaries
// (metrics-server, prometheus, keda, keda-adapter); when set, it replaces
// the cache of hack/build-metrics.sh.
const MetricsBinDirEnv = "KONDUCTOR_METRICS_BIN"

// ErrMetricsNotBuilt is returned by FindMetricsBinaries when a binary is not
// in the build cache.
var ErrMetricsNotBuilt = errors.New("metrics binaries not built: run hack/build-metrics.sh (or make metrics-binaries)")

// FindMetricsBinaries returns the directory of the metrics pipeline's
// binaries without building: $MetricsBinDirEnv if set, else what
// `hack/build-metrics.sh --find` reports for components (all of them when
// none are named). A missing binary is ErrMetricsNotBuilt.
func FindMetricsBinaries(ctx context.Context, components ...string) (string, error) {
	if dir := os.Getenv(MetricsBinDirEnv); dir != "" {
		return dir, nil
	}
	script, err := findUp("hack/build-metrics.sh")
	if err != nil {
		return "", err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script, "--find")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if len(components) > 0 {
		cmd.Env = append(os.Environ(), "METRICS_COMPONENTS="+strings.Join(components, " "))
	}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 3 {
			return "", fmt.Errorf("%w (%s)", ErrMetricsNotBuilt, strings.TrimSpace(stderr.String()))
		}
		return "", fmt.Errorf("%s --find: %w: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(out.String())
	if dir == "" {
		return "", fmt.Errorf("%s --find printed no directory", script)
	}
	return dir, nil
}

// DefaultMetricsBinDir is where hack/build-metrics.sh puts its binaries
// ($MetricsBinDirEnv when set).
func DefaultMetricsBinDir() string {
	if dir := os.Getenv(MetricsBinDirEnv); dir != "" {
		return dir
	}
	root := os.Getenv("KONDUCTOR_CACHE")
	if root == "" {
		home, _ := os.UserHomeDir()
		root = filepath.Join(home, ".cache", "konductor")
	}
	return filepath.Join(root, "metrics", "bin")
}

// MetricsImages maps the upstream images of the metrics pipeline to the
// binaries built into dir, leaving out what is not there:
//
//	registry.k8s.io/metrics-server/metrics-server → metrics-server
//	prom/prometheus, quay.io/prometheus/prometheus → prometheus
//	ghcr.io/kedacore/keda                          → keda (the operator)
//	ghcr.io/kedacore/keda-metrics-apiserver        → keda-adapter
//
// Keys are last path elements, so any registry's copy of an image maps too.
// The upstream manifests' commands (/keda, /keda-adapter, /bin/prometheus)
// name the binaries, which the node agent then runs. The images run as
// non-root users, who cannot reach a cache under a private home directory:
// with stageDir set, the binaries are linked (or copied) into
// stageDir/metrics-images, which must be searchable by every user (the
// project's bin directory), and mapped there.
func MetricsImages(dir, stageDir string) (node.ImageMap, error) {
	m := node.ImageMap{}
	for image, bin := range map[string]string{
		"metrics-server":         "metrics-server",
		"prometheus":             "prometheus",
		"keda":                   "keda",
		"keda-metrics-apiserver": "keda-adapter",
	} {
		path := filepath.Join(dir, bin)
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			continue
		}
		if stageDir != "" {
			staged, err := stage(path, filepath.Join(stageDir, "metrics-images"))
			if err != nil {
				return nil, fmt.Errorf("staging %s: %w", bin, err)
			}
			path = staged
		}
		m[image] = path
	}
	return m, nil
}

// stage puts a current copy of the file src into dir: a hard link where
// the file system allows, else a copy; an up-to-date one is kept.
func stage(src, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, filepath.Base(src))
	s, err := os.Stat(src)
	if err != nil {
		return "", err
	}
	if d, err := os.Stat(dst); err == nil && (os.SameFile(s, d) || (d.Size() == s.Size() && !d.ModTime().Before(s.ModTime()))) {
		return dst, nil
	}
	tmp := dst + ".staging"
	_ = os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		in, err := os.Open(src)
		if err != nil {
			return "", err
		}
		defer in.Close()
		out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return "", err
		}
		if err := out.Close(); err != nil {
			return "", err
		}
	}
	// Renamed into place: a running pod keeps the file it started with.
	return dst, os.Rename(tmp, dst)
}
