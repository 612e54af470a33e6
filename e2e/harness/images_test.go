package harness

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestProjectImagesBuildable checks that each image's Dockerfile exists,
// builds a main package that exists, and runs it as a non-root user.
func TestProjectImagesBuildable(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	build := regexp.MustCompile(`go build .* -o /out/(\S+) (\./\S+)`)
	entry := regexp.MustCompile(`ENTRYPOINT \["/usr/local/bin/(\S+)"\]`)
	for _, img := range ProjectImages {
		t.Run(img.Tag, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(root, img.Dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			m := build.FindSubmatch(raw)
			if m == nil {
				t.Fatalf("%s: no `go build -o /out/<bin> ./<package>` line", img.Dockerfile)
			}
			if _, err := os.Stat(filepath.Join(root, string(m[2]), "main.go")); err != nil {
				t.Errorf("%s builds %s, which has no main.go: %v", img.Dockerfile, m[2], err)
			}
			if e := entry.FindSubmatch(raw); e == nil || string(e[1]) != string(m[1]) {
				t.Errorf("%s: ENTRYPOINT does not run the built binary %s", img.Dockerfile, m[1])
			}
			if !regexp.MustCompile(`(?m)^USER 65532`).Match(raw) {
				t.Errorf("%s: the final stage must run as USER 65532 (non-root)", img.Dockerfile)
			}
			if _, err := os.Stat(filepath.Join(root, img.Dockerfile+".dockerignore")); err != nil {
				t.Errorf("%s: no .dockerignore next to it: %v", img.Dockerfile, err)
			}
		})
	}
}
