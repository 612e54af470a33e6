package node

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// ImageMap maps container images to local binaries. A key is an image
// repository without tag or digest ("docker.io/library/postgres",
// "konductor.dev/echo") or only its last path element ("postgres", "kong").
// The full repository is tried first, then the last element.
type ImageMap map[string]string

// Resolve returns the binary for image.
func (m ImageMap) Resolve(image string) (string, error) {
	repo := Repository(image)
	if repo == "" {
		return "", fmt.Errorf("image %q: empty repository", image)
	}
	if bin, ok := m[repo]; ok {
		return bin, nil
	}
	last := repo[strings.LastIndexByte(repo, '/')+1:]
	if bin, ok := m[last]; ok {
		return bin, nil
	}
	known := make([]string, 0, len(m))
	for k := range m {
		known = append(known, k)
	}
	slices.Sort(known)
	return "", fmt.Errorf("image %q: no local binary for repository %q (known: %s)", image, repo, strings.Join(known, ", "))
}

// Repository strips the tag and digest from an image reference. A colon
// after the last slash starts a tag; one before it belongs to a registry
// host:port.
func Repository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	slash := strings.LastIndexByte(image, '/')
	if colon := strings.LastIndexByte(image, ':'); colon > slash {
		image = image[:colon]
	}
	return image
}

// command turns a container's command and args into the argv to execute.
// Like a container runtime, an empty command means the image's entrypoint
// (its binary). A command naming the image's binary (by path or base name,
// e.g. "/usr/local/bin/kongsim") runs the mapped binary; any other command
// (sh, a tool on the host) runs as written.
func command(bin string, cmdline, args []string) []string {
	if len(cmdline) == 0 {
		return append([]string{bin}, args...)
	}
	argv := append(slices.Clone(cmdline), args...)
	if filepath.Base(cmdline[0]) == filepath.Base(bin) {
		argv[0] = bin
	}
	return argv
}
