package footprint

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/kongclient"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/manager"
	"konductor.dev/controller/options"
)

// The profile mode: the konductor binary serves no pprof, so with
// KONDUCTOR_FOOTPRINT_PPROF=<dir> the measurement runs this test binary as
// the controller instead (childEnv set, flags in childArgsEnv). The child
// wires the controller library as cmd/konductor does and serves /metrics
// and /debug/pprof/ on --metrics-bind-address; the parent saves a heap
// profile into <dir> at every reading. Its figures include the testing
// package's small overhead.
const (
	profileDirEnv = "KONDUCTOR_FOOTPRINT_PPROF"
	childEnv      = "KONDUCTOR_FOOTPRINT_CHILD"
	childArgsEnv  = "KONDUCTOR_FOOTPRINT_CHILD_ARGS"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		var args []string
		if err := json.Unmarshal([]byte(os.Getenv(childArgsEnv)), &args); err != nil {
			fmt.Fprintf(os.Stderr, "footprint child: %s: %v\n", childArgsEnv, err)
			os.Exit(2)
		}
		os.Exit(runChild(args, os.Stderr))
	}
	os.Exit(m.Run())
}

// childCommand returns the command line and environment that run this
// test binary as the profiled controller with args.
func childCommand(args []string) (bin string, env []string) {
	raw, err := json.Marshal(args)
	if err != nil {
		panic(err) // a []string always marshals
	}
	return os.Args[0], []string{childEnv + "=1", childArgsEnv + "=" + string(raw)}
}

// runChild is cmd/konductor's main with /debug/pprof/ beside /metrics.
func runChild(args []string, stderr io.Writer) int {
	o, err := options.Parse(args, options.Env{})
	if err != nil {
		fmt.Fprintf(stderr, "footprint child: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	klog.SetSlogLogger(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runChildController(ctx, o, log); err != nil {
		log.Error("footprint child stopped", "err", err)
		return 1
	}
	return 0
}

func runChildController(ctx context.Context, o *options.Options, log *slog.Logger) error {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = o.Kubeconfig
	kubeconfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{})
	rest, err := kubeconfig.ClientConfig()
	if err != nil {
		return fmt.Errorf("--kubeconfig: %w", err)
	}
	rest.UserAgent = "konductor-footprint"
	rest.QPS, rest.Burst = o.APIServerQPS, o.APIServerBurst
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return err
	}
	namespace, _, _ := kubeconfig.Namespace()
	kong, err := kongclient.NewHTTPClient(kongclient.ClientOptions{
		CACertFile: o.KongAdminCACertFile, ClientCertFile: o.KongAdminTLSClientCert, ClientKeyFile: o.KongAdminTLSClientKey,
		TLSSkipVerify: o.KongAdminTLSSkipVerify, TLSServerName: o.KongAdminTLSServerName, Token: o.KongAdminToken,
		Timeout: o.KongAdminTimeout,
	})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := manager.New(manager.Config{
		Options: o, Client: client, HTTPClient: kong, PodName: os.Getenv("POD_NAME"),
		ElectionNamespace: namespace, Registerer: reg, Logger: log,
		NewDBPusher: func(ko kongsync.Options) (manager.Pusher, error) { return dbsync.NewBodyPusher(ko), nil },
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	l, err := net.Listen("tcp", o.MetricsBindAddress)
	if err != nil {
		return fmt.Errorf("--metrics-bind-address: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	log.Info("serving", "flag", "metrics-bind-address", "address", l.Addr().String())
	return m.Run(ctx)
}

// saveHeapProfile fetches a heap profile (after a collection) from the
// child's /debug/pprof/heap into dir/heap-<name>.pb.gz.
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
