package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoDocker wraps every reason DockerReady gives for not using Docker.
var ErrNoDocker = errors.New("no reachable Docker engine")

// DockerReady reports whether the docker CLI (docker, or a path) is
// installed and its engine answers, within ten seconds.
func DockerReady(ctx context.Context, docker string) error {
	if docker == "" {
		docker = "docker"
	}
	path, err := exec.LookPath(docker)
	if err != nil {
		return fmt.Errorf("%w: %s is not installed (%v)", ErrNoDocker, docker, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "info", "--format", "{{.ServerVersion}}")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: `%s info` failed (%v): %s", ErrNoDocker, docker, err, strings.TrimSpace(out.String()))
	}
	if strings.TrimSpace(out.String()) == "" {
		return fmt.Errorf("%w: `%s info` reported no server version", ErrNoDocker, docker)
	}
	return nil
}

// Image is a container image the suite builds from the repository.
type Image struct {
	// Tag is the image reference the manifests use, e.g. "konductor:dev".
	Tag string
	// Dockerfile is relative to the repository root.
	Dockerfile string
}

// ProjectImages are the images built for kind: the controller, the fake
// Kong and the echo backend (what the local process cluster maps to
// binaries instead).
var ProjectImages = []Image{
	{Tag: "konductor:dev", Dockerfile: "build/konductor.Dockerfile"},
	{Tag: "kongsim:dev", Dockerfile: "build/kongsim.Dockerfile"},
	{Tag: EchoImage, Dockerfile: "build/echo.Dockerfile"},
}

// EchoImage is the backend the suite routes to; the local process cluster
// maps it to its echoserver binary.
const EchoImage = "konductor.dev/echo:dev"

// BuildImage runs `docker build` for img with the repository root as the
// context, as the Dockerfiles expect (they build from the go.work).
func BuildImage(ctx context.Context, docker, root string, img Image, log io.Writer) error {
	if docker == "" {
		docker = "docker"
	}
	cmd := exec.CommandContext(ctx, docker, "build", "--file", filepath.Join(root, img.Dockerfile), "--tag", img.Tag, root)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(cmd.Environ(), "DOCKER_BUILDKIT=1")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker build %s (%s): %w", img.Tag, img.Dockerfile, err)
	}
	return nil
}

// PullImage runs `docker pull` unless the image is already present.
func PullImage(ctx context.Context, docker, image string, log io.Writer) error {
	if docker == "" {
		docker = "docker"
	}
	if exec.CommandContext(ctx, docker, "image", "inspect", image).Run() == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, docker, "pull", image)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("docker pull %s: %w", image, err)
	}
	return nil
}
