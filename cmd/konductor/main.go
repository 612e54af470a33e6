// Command konductor is the Kong ingress controller. "konductor translate
// -f <manifests.yaml>" prints the Kong configuration of a bundle of
// manifests without a cluster. Otherwise it parses flags, builds
// the Kubernetes and Kong Admin API clients, serves metrics and health
// probes, and runs the manager until SIGTERM or SIGINT, on which it steps
// down (releasing the leader lock) and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"konductor.dev/controller/dbsync"
	"konductor.dev/controller/health"
	"konductor.dev/controller/kongclient"
	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/manager"
	"konductor.dev/controller/options"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "translate" {
		os.Exit(runTranslate(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	o, err := options.Parse(args, options.Env{})
	if errors.Is(err, options.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "konductor: %v\nRun konductor --help for the flags.\n", err)
		return 2
	}
	log := newLogger(o, stderr)
	// client-go logs through klog; send it to the same structured log.
	klog.SetSlogLogger(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runController(ctx, o, log); err != nil {
		log.Error("konductor stopped", "err", err)
		return 1
	}
	return 0
}

func runController(ctx context.Context, o *options.Options, log *slog.Logger) error {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = o.Kubeconfig
	kubeconfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{})
	rest, err := kubeconfig.ClientConfig()
	if err != nil {
		return fmt.Errorf("--kubeconfig: %w", err)
	}
	rest.UserAgent = "konductor"
	rest.QPS, rest.Burst = o.APIServerQPS, o.APIServerBurst
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return fmt.Errorf("building the Kubernetes client: %w", err)
	}
	// Each clientset gets its own rate limiter: the lock's renewals must not
	// wait behind 10k status writes.
	electionClient, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return fmt.Errorf("building the Kubernetes client: %w", err)
	}
	dynamicClient, err := dynamic.NewForConfig(rest)
	if err != nil {
		return fmt.Errorf("building the Kubernetes client: %w", err)
	}
	namespace, _, _ := kubeconfig.Namespace()

	kong, err := kongclient.NewHTTPClient(kongclient.ClientOptions{
		CACertFile:     o.KongAdminCACertFile,
		ClientCertFile: o.KongAdminTLSClientCert,
		ClientKeyFile:  o.KongAdminTLSClientKey,
		TLSSkipVerify:  o.KongAdminTLSSkipVerify,
		TLSServerName:  o.KongAdminTLSServerName,
		Token:          o.KongAdminToken,
		Timeout:        o.KongAdminTimeout,
	})
	if err != nil {
		return fmt.Errorf("--kong-admin-*: building the Admin API client: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m, err := manager.New(manager.Config{
		Options:           o,
		Client:            client,
		Dynamic:           dynamicClient,
		ElectionClient:    electionClient,
		HTTPClient:        kong,
		PodName:           os.Getenv("POD_NAME"),
		ElectionNamespace: namespace,
		Registerer:        reg,
		Logger:            log,
		// Kong with a database is configured by diffing entities through
		// the Admin API of one node instead of POST /config.
		NewDBPusher: func(ko kongsync.Options) (manager.Pusher, error) { return dbsync.NewBodyPusher(ko), nil },
		// A translation of 10k Ingresses and its pushes leave ~50 MB of
		// garbage; once the configuration went idle, give it back instead
		// of holding it until the next collections shrink the heap.
		OnConfigCompacted: func(int) { debug.FreeOSMemory() },
	})
	if err != nil {
		return err
	}

	servers := []struct {
		flag, addr string
		handler    http.Handler
	}{
		{"metrics-bind-address", o.MetricsBindAddress, metricsMux(reg, o.Profiling)},
		{"health-probe-bind-address", o.HealthProbeBindAddress, health.Mux(m.ReadyChecks()...)},
	}
	var started []*http.Server
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range started {
			_ = s.Shutdown(shutdownCtx)
		}
	}()
	serveErr := make(chan error, len(servers))
	for _, s := range servers {
		if s.addr == "" {
			continue
		}
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("--%s: %w", s.flag, err)
		}
		srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
		started = append(started, srv)
		log.Info("serving", "flag", s.flag, "address", l.Addr().String())
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("--%s: %w", s.flag, err)
			}
		}()
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case err := <-serveErr:
			cancel(err)
		case <-runCtx.Done():
		}
	}()
	if err := m.Run(runCtx); err != nil {
		return err
	}
	if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil {
		return cause
	}
	log.Info("shut down cleanly")
	return nil
}

func metricsMux(reg *prometheus.Registry, profiling bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func newLogger(o *options.Options, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(o.LogLevel))) // validated by options
	ho := &slog.HandlerOptions{Level: level}
	if o.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, ho))
	}
	return slog.New(slog.NewJSONHandler(w, ho))
}
