package cluster

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"konductor.dev/sim/cluster/node"
)

// DefaultImages maps the project's images to binaries found in binDir (the
// output of make build) and to the host's PostgreSQL server, leaving out
// what is not there:
//
//	kong, kong/kong, kongsim → binDir/kong-image/kongsim
//	konductor                → binDir/konductor
//	konductor.dev/echo       → binDir/echoserver
//	postgres                 → binDir/postgres-image/docker-entrypoint (pgentry)
//
// The kong image is a directory, binDir/kong-image, whose kong and kongsim
// both lead to binDir/kongsim: the image's directory comes first on PATH, so
// a preStop hook running `kong quit --wait=15` (Kong's recommended drain)
// finds kong as it would in the Kong image.
//
// The postgres image is a directory, binDir/postgres-image, standing in for
// the image's bin directory: docker-entrypoint, pg_isready and psql lead to
// binDir/pgentry, every other name to the host's PostgreSQL binaries
// (/usr/lib/postgresql/<newest>/bin). The node agent puts an image's
// directory first on PATH, so exec probes such as pg_isready find it.
func DefaultImages(binDir string) node.ImageMap {
	m := node.ImageMap{}
	add := func(bin string, images ...string) {
		if st, err := os.Stat(bin); err == nil && !st.IsDir() {
			for _, img := range images {
				m[img] = bin
			}
		}
	}
	if entry, err := kongImage(binDir); err == nil && entry != "" {
		add(entry, "kong", "kongsim")
	}
	add(filepath.Join(binDir, "konductor"), "konductor")
	add(filepath.Join(binDir, "echoserver"), "konductor.dev/echo")
	if entry, err := postgresImage(binDir); err == nil && entry != "" {
		add(entry, "postgres")
	}
	return m
}

// kongImage lays out binDir/kong-image and returns its kongsim, or "" when
// kongsim is not built.
func kongImage(binDir string) (string, error) {
	kongsim := filepath.Join(binDir, "kongsim")
	if st, err := os.Stat(kongsim); err != nil || st.IsDir() {
		return "", nil
	}
	dir := filepath.Join(binDir, "kong-image")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"kong", "kongsim"} {
		if err := symlinkTo(kongsim, filepath.Join(dir, name)); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "kongsim"), nil
}

// symlinkTo makes link point at target, in place: a running cluster may
// use the directory.
func symlinkTo(target, link string) error {
	if got, err := os.Readlink(link); err == nil && got == target {
		return nil
	}
	_ = os.Remove(link)
	return os.Symlink(target, link)
}

// postgresImage lays out binDir/postgres-image and returns its entrypoint,
// or "" when pgentry or PostgreSQL is missing.
func postgresImage(binDir string) (string, error) {
	pgentry := filepath.Join(binDir, "pgentry")
	if _, err := os.Stat(pgentry); err != nil {
		return "", nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		return "", nil
	}
	major := func(p string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	sort.Slice(found, func(i, j int) bool { return major(found[i]) < major(found[j]) })
	pgBin := filepath.Dir(found[len(found)-1])

	dir := filepath.Join(binDir, "postgres-image")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	links := map[string]string{}
	entries, err := os.ReadDir(pgBin)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		links[e.Name()] = filepath.Join(pgBin, e.Name())
	}
	for _, name := range []string{"docker-entrypoint", "pg_isready", "psql"} {
		links[name] = pgentry
	}
	// Brought up to date in place (a running cluster may use the
	// directory): the host's PostgreSQL may have changed since.
	for name, target := range links {
		link := filepath.Join(dir, name)
		if got, err := os.Readlink(link); err == nil && got == target {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "docker-entrypoint"), nil
}
