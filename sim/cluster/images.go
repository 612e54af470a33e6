package cluster

import (
	"os"
	"os/exec"
	"path/filepath"

	"konductor.dev/sim/cluster/node"
)

// DefaultImages maps the project's images to binaries found in binDir (the
// output of make build) and to the host's PostgreSQL server, leaving out
// what is not there:
//
//	kong, kong/kong, kongsim → binDir/kongsim
//	konductor                → binDir/konductor
//	konductor.dev/echo       → binDir/echoserver
//	postgres                 → postgres on PATH or in /usr/lib/postgresql
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
	if pg, err := exec.LookPath("postgres"); err == nil {
		add(pg, "postgres")
	} else if found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres"); len(found) > 0 {
		add(found[len(found)-1], "postgres")
	}
	return m
}
