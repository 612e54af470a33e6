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
//	kong, kong/kong, kongsim → binDir/kongsim
//	konductor                → binDir/konductor
//	konductor.dev/echo       → binDir/echoserver
//	postgres                 → binDir/postgres-image/docker-entrypoint (pgentry)
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
	add(filepath.Join(binDir, "kongsim"), "kong", "kongsim")
	add(filepath.Join(binDir, "konductor"), "konductor")
	add(filepath.Join(binDir, "echoserver"), "konductor.dev/echo")
	if entry, err := postgresImage(binDir); err == nil && entry != "" {
		add(entry, "postgres")
	}
	return m
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
