package proxy

import "testing"

func TestUpstreamPath(t *testing.T) {
	tests := []struct {
		handling    string
		strip       bool
		servicePath string
		reqPath     string
		matched     string
		want        string
	}{
		// Kong's documented path_handling table: service path /s.
		{"v0", false, "/s", "/fv0req", "/fv0", "/s/fv0req"},
		{"v0", false, "/s", "/fv0", "/fv0", "/s/fv0"},
		{"v0", true, "/s", "/tv0req", "/tv0", "/s/req"},
		{"v0", true, "/s", "/tv0", "/tv0", "/s"},
		{"v0", false, "/s", "/fv0/req", "/fv0/", "/s/fv0/req"},
		{"v0", true, "/s", "/tv0/req", "/tv0/", "/s/req"},
		{"v0", true, "/s", "/tv0/", "/tv0/", "/s/"},
		{"v0", true, "/s", "/tv0/", "/tv0", "/s/"},
		{"v1", false, "/s", "/fv1req", "/fv1", "/sfv1req"},
		{"v1", false, "/s", "/fv1", "/fv1", "/sfv1"},
		{"v1", true, "/s", "/tv1req", "/tv1", "/sreq"},
		{"v1", true, "/s", "/tv1", "/tv1", "/s"},
		{"v1", true, "/s", "/tv1/req", "/tv1", "/s/req"},
		{"v1", true, "/s/", "/tv1/req", "/tv1", "/s/req"},

		// Service path with a trailing slash (v0).
		{"v0", true, "/s/", "/p/req", "/p", "/s/req"},
		{"v0", true, "/s/", "/preq", "/p", "/s/req"},
		{"v0", true, "/s/", "/p", "/p", "/s"},
		{"v0", true, "/s/", "/p/", "/p/", "/s/"},
		{"v0", false, "/s/", "/p/req", "/p", "/s/p/req"},

		// Root service path, the common case.
		{"", true, "", "/echo/x", "/echo", "/x"},
		{"", true, "/", "/echo", "/echo", "/"},
		{"", true, "/", "/echo/", "/echo/", "/"},
		{"", false, "/", "/echo/x", "/echo", "/echo/x"},
		{"", false, "/", "/", "", "/"},
		{"", false, "/api", "/", "", "/api"},

		// Regex match stripped whole; route without paths keeps the path.
		{"v0", true, "/", "/users/42/posts", "/users/42", "/posts"},
		{"v0", true, "/base", "/any/thing", "", "/base/any/thing"},

		// Dot segments after stripping cannot climb.
		{"v0", true, "/s", "/p/../x", "/p/", "/s/x"},
		{"v0", true, "/s", "/p..", "/p", "/s"},
	}
	for _, tt := range tests {
		got := upstreamPath(tt.handling, tt.strip, tt.servicePath, tt.reqPath, tt.matched)
		if got != tt.want {
			t.Errorf("upstreamPath(%q, strip=%v, service %q, request %q, matched %q) = %q, want %q",
				tt.handling, tt.strip, tt.servicePath, tt.reqPath, tt.matched, got, tt.want)
		}
	}
}
