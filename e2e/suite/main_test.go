//go:build e2e

package suite

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/e2e-framework/pkg/env"
	"sigs.k8s.io/e2e-framework/pkg/envconf"
	"sigs.k8s.io/e2e-framework/pkg/envfuncs"

	"konductor.dev/e2e/harness"
	"konductor.dev/e2e/manifests"
	"konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/e2eprovider"
)

// Settings, from the environment (the Makefile sets them):
//
//	KONDUCTOR_E2E_PROVIDER  kind (default) or local
//	KONDUCTOR_E2E_KONG      kind only: kong (real Kong, default) or kongsim
//	KONDUCTOR_E2E_KEEP      1: reuse a kind cluster of the same name and keep it
//	KONDUCTOR_E2E_NODE_IMAGE kind node image (default: kind's own)
//	KONDUCTOR_E2E_PROXY_PORT host port for the Kong proxy on kind (default 30080)
//	KONDUCTOR_E2E_BIN       local only: directory of konductor, kongsim, echoserver (default bin)
//	KONDUCTOR_E2E_CLUSTER   cluster name (default konductor-e2e)
//
// clusterName names the cluster (KONDUCTOR_E2E_CLUSTER, default
// konductor-e2e): two runs on one host need different names.
var clusterName = envOr("KONDUCTOR_E2E_CLUSTER", "konductor-e2e")

// realKongImage is the Kong the manifests name, postgresImage the
// PostgreSQL of the postgres overlay; kind pulls and loads both.
const (
	realKongImage = "kong:3.9"
	postgresImage = "postgres:17"
)

var (
	testenv env.Environment
	// skipReason, when set, makes every test skip: the suite cannot run here.
	skipReason string
	world      World
)

// World is what differs between the providers.
type World struct {
	Provider string
	// Kongsim swaps real Kong for kongsim (always on the local cluster).
	Kongsim bool
	// DeployDir is the repository's deploy/ directory.
	DeployDir string
	// ProxyURL reaches the Kong proxy Service from the test process (kind);
	// empty means go through EndpointSlices (local cluster, no kube-proxy).
	ProxyURL string
	// Images is the local cluster's image map (nil on kind).
	Images map[string]string
	// ProxyTLSAddr is host:port of the proxy Service's port 443 from the
	// test process (kind); empty means through EndpointSlices.
	ProxyTLSAddr string
}

func TestMain(m *testing.M) {
	cfg, err := envconf.NewFromFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	root, err := manifests.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	world = World{Provider: envOr("KONDUCTOR_E2E_PROVIDER", "kind"), DeployDir: filepath.Join(root, "deploy")}
	testenv = env.NewWithConfig(cfg)
	ctx := context.Background()

	switch world.Provider {
	case "kind":
		if err := harness.DockerReady(ctx, ""); err != nil {
			skipReason = fmt.Sprintf("the kind e2e suite needs Docker: %v", err)
			fmt.Fprintf(os.Stderr, "\n*** e2e SKIPPED, NOT PASSED: %s\n*** Start Docker, or run `make e2e-local` for the local process cluster.\n\n", skipReason)
			os.Exit(m.Run())
		}
		setupKind(root)
	case "local":
		if err := setupLocal(root); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(2)
		}
	default:
		fmt.Fprintf(os.Stderr, "e2e: KONDUCTOR_E2E_PROVIDER=%q: want kind or local\n", world.Provider)
		os.Exit(2)
	}
	os.Exit(testenv.Run(m))
}

func setupKind(root string) {
	kong := envOr("KONDUCTOR_E2E_KONG", "kong")
	world.Kongsim = kong == "kongsim"
	port, err := strconv.Atoi(envOr("KONDUCTOR_E2E_PROXY_PORT", "30080"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: KONDUCTOR_E2E_PROXY_PORT:", err)
		os.Exit(2)
	}
	world.ProxyURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	tlsPort, err := strconv.Atoi(envOr("KONDUCTOR_E2E_PROXY_TLS_PORT", strconv.Itoa(harness.ProxyTLSNodePort)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: KONDUCTOR_E2E_PROXY_TLS_PORT:", err)
		os.Exit(2)
	}
	world.ProxyTLSAddr = fmt.Sprintf("127.0.0.1:%d", tlsPort)
	kc := harness.NewKindCluster("")
	kc.HostProxyPort, kc.HostProxyTLSPort = port, tlsPort
	kc.Keep = os.Getenv("KONDUCTOR_E2E_KEEP") == "1"
	if img := os.Getenv("KONDUCTOR_E2E_NODE_IMAGE"); img != "" {
		kc.WithVersion(img)
	}

	images := []string{}
	buildImages := func(ctx context.Context, _ *envconf.Config) (context.Context, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Minute)
		defer cancel()
		for _, img := range harness.ProjectImages {
			start := time.Now()
			if err := harness.BuildImage(ctx, "", root, img, os.Stderr); err != nil {
				return ctx, err
			}
			fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", img.Tag, time.Since(start).Round(time.Second))
			images = append(images, img.Tag)
		}
		pull := []string{postgresImage}
		if !world.Kongsim {
			pull = append(pull, realKongImage)
		}
		for _, img := range pull {
			if err := harness.PullImage(ctx, "", img, os.Stderr); err != nil {
				return ctx, err
			}
			images = append(images, img)
		}
		return ctx, nil
	}
	loadImages := func(ctx context.Context, _ *envconf.Config) (context.Context, error) {
		for _, img := range images {
			start := time.Now()
			if err := kc.LoadImage(ctx, img); err != nil {
				return ctx, err
			}
			fmt.Fprintf(os.Stderr, "e2e: loaded %s into kind in %s\n", img, time.Since(start).Round(time.Second))
		}
		return ctx, nil
	}
	testenv.Setup(buildImages, envfuncs.CreateClusterWithOpts(kc, clusterName), loadImages)
	testenv.Finish(exportLogsOnFailure(clusterName), envfuncs.DestroyCluster(clusterName))
}

func setupLocal(root string) error {
	world.Kongsim = true // the local cluster runs kongsim for the kong image
	bin := envOr("KONDUCTOR_E2E_BIN", filepath.Join(root, "bin"))
	images := cluster.DefaultImages(bin)
	// The metrics pipeline, where hack/build-metrics.sh built it.
	metrics, err := cluster.MetricsImages(cluster.DefaultMetricsBinDir(), bin)
	if err != nil {
		return err
	}
	maps.Copy(images, metrics)
	world.Images = images
	for _, img := range []string{"kong", "konductor", "konductor.dev/echo"} {
		if _, ok := images[img]; !ok {
			return fmt.Errorf("the local cluster needs the binaries kongsim, konductor and echoserver in %s (image %s has none): run make build", bin, img)
		}
	}
	testenv.Setup(envfuncs.CreateClusterWithOpts(e2eprovider.New(), clusterName, e2eprovider.WithImages(images)))
	testenv.Finish(exportLogsOnFailure(clusterName), envfuncs.DestroyCluster(clusterName))
	return nil
}

// exportLogsOnFailure copies cluster and pod logs to
// $KONDUCTOR_E2E_LOGS (default e2e/suite/logs) when a test failed.
func exportLogsOnFailure(name string) env.Func {
	return func(ctx context.Context, cfg *envconf.Config) (context.Context, error) {
		if !failed.Load() {
			return ctx, nil
		}
		dest := envOr("KONDUCTOR_E2E_LOGS", "logs")
		fmt.Fprintf(os.Stderr, "e2e: a test failed; exporting cluster logs to %s\n", dest)
		return envfuncs.ExportClusterLogs(name, dest)(ctx, cfg)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
