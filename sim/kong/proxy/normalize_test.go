package proxy

import (
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := map[string]string{
		"":                   "/",
		"/":                  "/",
		"/plain/path":        "/plain/path",
		"/a//b///c":          "/a/b/c",
		"/a/./b":             "/a/b",
		"/a/b/../c":          "/a/c",
		"/public/../admin":   "/admin",
		"/..":                "/",
		"/../../x":           "/x",
		"/a/..":              "/",
		"/a/.":               "/a/",
		"/a/.hidden":         "/a/.hidden",
		"/%7Euser/%41":       "/~user/A",
		"/%2e%2e/admin":      "/admin",
		"/a%2fb":             "/a%2Fb",
		"/a%20b":             "/a%20b",
		"/bad%zz/%4":         "/bad%zz/%4",
		"/trailing/":         "/trailing/",
		"//double/./slash//": "/double/slash/",
	}
	for in, want := range tests {
		if got := normalizePath(in); got != want {
			t.Errorf("normalizePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/a/../b", "/%2e%2E/", "//x//", "/%", "/.%2e/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !strings.HasPrefix(in, "/") {
			return // request paths always start with a slash
		}
		out := normalizePath(in)
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("normalizePath(%q) = %q does not start with /", in, out)
		}
		if strings.Contains(out, "//") {
			t.Fatalf("normalizePath(%q) = %q keeps a double slash", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("normalizePath(%q) = %q keeps a dot segment", in, out)
			}
		}
		// A stray "%" next to a decoded escape can form a new escape, so
		// only paths with well-formed escapes must be stable.
		if again := normalizePath(out); again != out && !strayPercent(in) {
			t.Fatalf("not idempotent: %q → %q → %q", in, out, again)
		}
	})
}

func strayPercent(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return true
		}
	}
	return false
}
