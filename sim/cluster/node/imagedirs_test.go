package node

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestHiddenImageDirs(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	imageDir := filepath.Join(bin, "kong-image")
	if err := os.MkdirAll(imageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kongsim"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(bin, "kongsim"), filepath.Join(imageDir, "kongsim")); err != nil {
		t.Fatal(err)
	}
	images := ImageMap{"kong": filepath.Join(imageDir, "kongsim")}
	for _, tc := range []struct {
		name   string
		mounts []mountSpec
		want   []string
	}{
		{name: "no volumes", want: nil},
		{name: "a volume elsewhere", mounts: []mountSpec{{target: "/kong_prefix", dir: true}}, want: nil},
		{name: "a volume above the image and its target", mounts: []mountSpec{{target: root, dir: true}}, want: []string{imageDir, bin}},
		{name: "a volume with a trailing slash", mounts: []mountSpec{{target: root + "/", dir: true}}, want: []string{imageDir, bin}},
		{name: "a file volume hides nothing", mounts: []mountSpec{{target: root, dir: false}}, want: nil},
		{name: "a sibling with a common prefix", mounts: []mountSpec{{target: root + "x", dir: true}}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hiddenImageDirs(images, "kong:3.9", tc.mounts); !slices.Equal(got, tc.want) {
				t.Errorf("hiddenImageDirs = %v, want %v", got, tc.want)
			}
		})
	}
}
