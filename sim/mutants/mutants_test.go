package mutants

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCatalogueApplies keeps the catalogue from rotting: every entry's
// anchor occurs exactly once in its production file and every mutant
// compiles in its package. The mutants themselves run under make mutants.
func TestCatalogueApplies(t *testing.T) {
	root, err := Root(".")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(Catalogue); err != nil {
		t.Fatal(err)
	}
	if len(Catalogue) < 20 {
		t.Fatalf("the catalogue has %d mutants; it must keep at least 20", len(Catalogue))
	}
	areas := map[string]bool{}
	for _, m := range Catalogue {
		areas[m.Area] = true
		if _, err := m.Apply(root); err != nil {
			t.Error(err)
		}
	}
	for _, a := range []string{"election", "fencing", "kongsync", "dbsync", "status", "snapshot", "manager", "translation"} {
		if !areas[a] {
			t.Errorf("no mutant in area %s", a)
		}
	}
	if t.Failed() {
		return
	}
	// Batches compile concurrently: each go build mostly waits on the
	// workspace load, not on the compiler.
	t.Run("compile", func(t *testing.T) {
		for i, batch := range Batches(Catalogue) {
			t.Run(fmt.Sprint("batch", i), func(t *testing.T) {
				t.Parallel()
				if err := Compile(t.Context(), root, batch...); err != nil {
					// Name the culprit: compile the batch's entries one by one.
					for _, m := range batch {
						if err := Compile(t.Context(), root, m); err != nil {
							t.Errorf("mutant %s does not compile: %v", m.Name, err)
						}
					}
				}
			})
		}
	})
}

// TestCompileFailsLoudly: a mutant that does not compile is an error of
// its own, never a mutant "caught" by a failing build.
func TestCompileFailsLoudly(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.work", "go 1.26\n\nuse ./controller\n")
	write("controller/go.mod", "module example.test/controller\n\ngo 1.26\n")
	write("controller/x/x.go", "package x\n\nfunc A() int { return 1 }\n")
	good := Mutant{Name: "t/good", File: "controller/x/x.go", Find: "return 1", Repl: "return 2"}
	if err := Compile(t.Context(), root, good); err != nil {
		t.Fatalf("a compiling mutant: %v", err)
	}
	bad := Mutant{Name: "t/bad", File: "controller/x/x.go", Find: "return 1", Repl: "return undefined"}
	if err := Compile(t.Context(), root, bad); err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Fatalf("a mutant that does not compile: Compile = %v, want the compiler's error", err)
	}
}

// TestApplyRefusesBadAnchors: a missing or ambiguous anchor is an error,
// not a silent no-op mutant that would count as "survived".
func TestApplyRefusesBadAnchors(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "controller", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "controller", "x", "x.go")
	if err := os.WriteFile(file, []byte("package x\n\nfunc a() int { return 1 }\nfunc b() int { return 1 }\nfunc c() int { return 2 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, find, want string
	}{
		{"missing", "return 3", "anchor not found"},
		{"twice", "return 1", "occurs 2 times"},
		{"empty", "", "empty anchor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Mutant{Name: "t/" + tc.name, File: "controller/x/x.go", Find: tc.find, Repl: "return 9"}
			_, err := m.Apply(root)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	m := Mutant{Name: "t/ok", File: "controller/x/x.go", Find: "return 2", Repl: "return 9"}
	out, err := m.Apply(root)
	if err != nil || !strings.Contains(string(out), "func c() int { return 9 }") {
		t.Fatalf("Apply = %q, %v", out, err)
	}
	if src, _ := os.ReadFile(file); strings.Contains(string(src), "return 9") {
		t.Fatal("Apply modified the source file")
	}
}

// TestBatchesNeverShareAFile: one overlay replaces a file once.
func TestBatchesNeverShareAFile(t *testing.T) {
	n := 0
	for _, b := range Batches(Catalogue) {
		seen := map[string]bool{}
		for _, m := range b {
			if seen[m.File] {
				t.Fatalf("batch mutates %s twice", m.File)
			}
			seen[m.File] = true
			n++
		}
	}
	if n != len(Catalogue) {
		t.Fatalf("batches hold %d mutants, catalogue %d", n, len(Catalogue))
	}
}
