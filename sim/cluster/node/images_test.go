package node

import (
	"slices"
	"strings"
	"testing"
)

func TestRepository(t *testing.T) {
	for _, tc := range []struct{ image, want string }{
		{"kong", "kong"},
		{"kong:3.9", "kong"},
		{"docker.io/library/postgres:16.4", "docker.io/library/postgres"},
		{"localhost:5000/konductor", "localhost:5000/konductor"},
		{"localhost:5000/konductor:v1", "localhost:5000/konductor"},
		{"konductor.dev/echo@sha256:abcd", "konductor.dev/echo"},
		{"konductor.dev/echo:v1@sha256:abcd", "konductor.dev/echo"},
		{"", ""},
	} {
		if got := Repository(tc.image); got != tc.want {
			t.Errorf("Repository(%q) = %q, want %q", tc.image, got, tc.want)
		}
	}
}

func TestImageMapResolve(t *testing.T) {
	m := ImageMap{
		"kong":                  "/bin/kongsim",
		"konductor.dev/echo":    "/bin/echo-server",
		"postgres":              "/usr/lib/postgresql/bin/postgres",
		"registry.example/kong": "/bin/other-kong",
	}
	for _, tc := range []struct {
		image, want, wantErr string
	}{
		{image: "kong:3.9", want: "/bin/kongsim"},
		{image: "docker.io/kong/kong:3.9", want: "/bin/kongsim"},
		{image: "registry.example/kong:1", want: "/bin/other-kong"},
		{image: "konductor.dev/echo:latest", want: "/bin/echo-server"},
		{image: "postgres:16", want: "/usr/lib/postgresql/bin/postgres"},
		{image: "nginx:1.27", wantErr: `image "nginx:1.27": no local binary for repository "nginx"`},
		{image: "", wantErr: "empty repository"},
	} {
		got, err := m.Resolve(tc.image)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Resolve(%q) error = %v, want it to contain %q", tc.image, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.image, got, err, tc.want)
		}
	}
}

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		name          string
		cmdline, args []string
		want          []string
	}{
		{"entrypoint", nil, []string{"--port", "80"}, []string{"/b/kongsim", "--port", "80"}},
		{"command names the binary by path", []string{"/usr/local/bin/kongsim", "serve"}, []string{"-v"}, []string{"/b/kongsim", "serve", "-v"}},
		{"command names the binary by base", []string{"kongsim"}, nil, []string{"/b/kongsim"}},
		{"other command runs as written", []string{"sh", "-c"}, []string{"exit 3"}, []string{"sh", "-c", "exit 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := command("/b/kongsim", tc.cmdline, tc.args); !slices.Equal(got, tc.want) {
				t.Errorf("command = %q, want %q", got, tc.want)
			}
		})
	}
}
