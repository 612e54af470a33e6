package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/sim/kong"
)

var kongsimBinary struct {
	once sync.Once
	path string
	err  error
}

// buildKongsim builds cmd/kongsim once per test binary.
func buildKongsim(t testing.TB) string {
	t.Helper()
	b := &kongsimBinary
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "konductor-integration-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "kongsim")
		cmd := exec.Command("go", "build", "-o", b.path, "konductor.dev/cmd/kongsim")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build konductor.dev/cmd/kongsim: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// kongProcess is one kongsim process on loopback.
type kongProcess struct {
	cmd          *exec.Cmd
	admin, proxy string // host:port
	exited       chan struct{}
	stopOnce     sync.Once
	stderrTail   *tail
}

// startKongsim starts a DB-less kongsim whose Admin API and proxy listen
// on admin and proxy (127.0.0.1:0 picks free ports), and returns once it
// serves. The process is stopped with SIGTERM at test cleanup.
func startKongsim(t testing.TB, bin, admin, proxy string) *kongProcess {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"KONG_DATABASE=off", "KONG_ADMIN_LISTEN="+admin, "KONG_PROXY_LISTEN="+proxy,
		"KONG_STATUS_LISTEN=off", "KONG_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &kongProcess{cmd: cmd, exited: make(chan struct{}), stderrTail: &tail{}}
	started := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.stderrTail.add(sc.Text())
			var line struct {
				Msg   string `json:"msg"`
				Admin string `json:"admin"`
				Proxy string `json:"proxy"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "kongsim started" {
				started <- [2]string{line.Admin, line.Proxy}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case addrs := <-started:
		p.admin, p.proxy = addrs[0], addrs[1]
	case <-p.exited:
		t.Fatalf("kongsim exited before serving: %s", p.stderrTail)
	case <-time.After(30 * time.Second):
		t.Fatalf("kongsim did not start within 30s: %s", p.stderrTail)
	}
	return p
}

// stop sends SIGTERM and waits for a graceful exit (SIGKILL after 10s).
func (p *kongProcess) stop(t testing.TB) {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("kongsim exited %d after SIGTERM: %s", code, p.stderrTail)
			}
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			t.Errorf("kongsim ignored SIGTERM for 10s")
		}
	})
}

// kill crashes the process, as a Kong pod killed by the kubelet.
func (p *kongProcess) kill() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

// tail keeps the last lines a process logged, for failure messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (l *tail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 20 {
		l.lines = l.lines[1:]
	}
}

func (l *tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.lines)
}

// reportedHash asks a Kong's Admin API for its configuration hash.
func reportedHash(ctx context.Context, c *http.Client, admin string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/status", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var st struct {
		Hash string `json:"configuration_hash"`
	}
	if err := decodeJSON(resp, &st); err != nil {
		return "", err
	}
	return st.Hash, nil
}

// TestKongsimProcesses runs the core flow over loopback: the controller
// (fake API server) configures three kongsim processes; one is killed and
// started again, empty, on the same address, and is configured again;
// traffic through its proxy reaches the app.
func TestKongsimProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs kongsim processes; skipped with -short")
	}
	bin := buildKongsim(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "web %s", r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	host, portText, _ := net.SplitHostPort(backend.Listener.Addr().String())
	port, _ := strconv.Atoi(portText)

	procs := make([]*kongProcess, replicas)
	var urls []string
	for i := range procs {
		procs[i] = startKongsim(t, bin, "127.0.0.1:0", "127.0.0.1:0")
		urls = append(urls, "http://"+procs[i].admin)
	}
	web := App{Name: "web", Addresses: []string{host}, Port: int32(port)}
	client := fake.NewClientset(append(web.Objects(), App{Name: "api"}.Objects()...)...)
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	t.Cleanup(transport.CloseIdleConnections)
	// A short drift check keeps the real-time wait for the restart short.
	startController(t, client, urls, transport, "--kong-drift-check-interval=500ms")

	httpc := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	want := expectedConfig(t, client).kongHash
	allServe := func() error {
		for i, p := range procs {
			got, err := reportedHash(context.Background(), httpc, p.admin)
			if err != nil {
				return fmt.Errorf("kongsim %d: %w", i, err)
			}
			if got != want {
				return fmt.Errorf("kongsim %d reports %s, want %s", i, got, want)
			}
		}
		return nil
	}
	eventually(t, 20*time.Second, "three kongsim processes configured", allServe)

	procs[1].kill()
	restarted := startKongsim(t, bin, procs[1].admin, procs[1].proxy)
	procs[1] = restarted
	if got, err := reportedHash(context.Background(), httpc, restarted.admin); err != nil || got != kong.ZeroHash {
		t.Fatalf("restarted kongsim reports %q (%v), want the empty hash", got, err)
	}
	eventually(t, 20*time.Second, "the restarted kongsim configured again", allServe)

	req, _ := http.NewRequest(http.MethodGet, "http://"+restarted.proxy+"/hello", nil)
	req.Host = "web.example.com"
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "web /hello" {
		t.Errorf("proxy of the restarted kongsim: HTTP %d %q, want 200 %q", resp.StatusCode, body, "web /hello")
	}
}
