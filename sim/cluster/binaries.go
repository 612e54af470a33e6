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
)

// BinDirEnv names a directory of prebuilt control-plane binaries; when set,
// Binaries uses it instead of running the build script.
const BinDirEnv = "KONDUCTOR_K8S_BIN"

// Binaries returns the directory of the control-plane binaries: $BinDirEnv if
// set, else the output of hack/build-k8s.sh (found by walking up from the
// working directory), which builds them on first use and is a cached no-op
// afterwards. The script's progress goes to progress.
func Binaries(ctx context.Context, progress io.Writer) (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return dir, nil
	}
	script, err := findUp("hack/build-k8s.sh")
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stdout = &out
	cmd.Stderr = progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	dir := strings.TrimSpace(out.String())
	if dir == "" {
		return "", fmt.Errorf("%s printed no directory", script)
	}
	return dir, nil
}

// ErrNotBuilt is returned by FindBinaries when the control-plane binaries
// are not in the build cache.
var ErrNotBuilt = errors.New("control-plane binaries not built: run hack/build-k8s.sh (or make k8s-binaries)")

// FindBinaries is Binaries without the build: $BinDirEnv if set, else the
// cached directory that `hack/build-k8s.sh --find` reports. It returns
// ErrNotBuilt when the cache lacks a binary, so a test never blocks for the
// minutes a first build takes (make and .ci/run build before testing).
func FindBinaries(ctx context.Context) (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		return dir, nil
	}
	script, err := findUp("hack/build-k8s.sh")
	if err != nil {
		return "", err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script, "--find")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 3 {
			return "", ErrNotBuilt
		}
		return "", fmt.Errorf("%s --find: %w: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(out.String())
	if dir == "" {
		return "", fmt.Errorf("%s --find printed no directory", script)
	}
	return dir, nil
}

// RepoRoot is the konductor repository around the working directory.
func RepoRoot() (string, error) {
	script, err := findUp("hack/build-k8s.sh")
	if err != nil {
		return "", err
	}
	return filepath.Dir(filepath.Dir(script)), nil
}

func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		candidate := filepath.Join(dir, rel)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find " + rel + " above the working directory")
		}
		dir = parent
	}
}
