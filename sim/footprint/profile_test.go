package footprint

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// profileDirEnv names the directory that receives a heap profile at every
// reading; the controller then runs with --profiling.
const profileDirEnv = "KONDUCTOR_FOOTPRINT_PPROF"

// saveHeapProfile fetches a heap profile (after a collection) from the
// controller's /debug/pprof/heap (served with --profiling) into dir/heap-<name>.pb.gz.
func saveHeapProfile(ctx context.Context, addr, dir, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /debug/pprof/heap: %s", resp.Status)
	}
	path := filepath.Join(dir, "heap-"+name+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}
