// Package e2eprovider lets sigs.k8s.io/e2e-framework create and destroy the
// local process cluster exactly as it does a kind cluster:
//
//	testenv.Setup(envfuncs.CreateClusterWithOpts(e2eprovider.New(), "e2e",
//		e2eprovider.WithImages(images)))
//	testenv.Finish(envfuncs.DestroyCluster("e2e"))
//
// The cluster runs inside the test process (its node agent is a goroutine),
// so it ends with the test binary at the latest; Destroy ends it earlier.
package e2eprovider

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/support"

	"konductor.dev/sim/cluster"
	"konductor.dev/sim/cluster/node"
)

// Version is the Kubernetes version hack/build-k8s.sh builds.
const Version = "v1.37.2"

// Provider is a support.E2EClusterProvider for the local process cluster.
type Provider struct {
	opts       cluster.Options
	version    string
	c          *cluster.Cluster
	kubeconfig string
}

var _ support.E2EClusterProvider = (*Provider)(nil)

// New returns a provider with default options.
func New() support.E2EClusterProvider { return (&Provider{}).SetDefaults() }

// WithImages adds image → binary mappings for the node agent.
func WithImages(images node.ImageMap) support.ClusterOpts {
	return func(p support.E2EClusterProvider) {
		if lp, ok := p.(*Provider); ok {
			if lp.opts.Images == nil {
				lp.opts.Images = node.ImageMap{}
			}
			for k, v := range images {
				lp.opts.Images[k] = v
			}
		}
	}
}

// WithNodes replaces the default nodes (one per zone a, b, c).
func WithNodes(nodes ...node.Spec) support.ClusterOpts {
	return func(p support.E2EClusterProvider) {
		if lp, ok := p.(*Provider); ok {
			lp.opts.Nodes = nodes
		}
	}
}

func (p *Provider) SetDefaults() support.E2EClusterProvider {
	if p.version == "" {
		p.version = Version
	}
	return p
}

func (p *Provider) WithName(name string) support.E2EClusterProvider { p.opts.Name = name; return p }

// WithVersion accepts only the version the build script pins.
func (p *Provider) WithVersion(version string) support.E2EClusterProvider {
	p.version = version
	return p
}

// WithPath sets the directory of the control-plane binaries.
func (p *Provider) WithPath(path string) support.E2EClusterProvider { p.opts.BinDir = path; return p }

func (p *Provider) WithOpts(opts ...support.ClusterOpts) support.E2EClusterProvider {
	for _, o := range opts {
		o(p)
	}
	return p
}

// Create starts the cluster and returns its kubeconfig path.
func (p *Provider) Create(ctx context.Context, _ ...string) (string, error) {
	if p.c != nil {
		return p.kubeconfig, nil
	}
	if p.version != Version {
		return "", fmt.Errorf("local process cluster: version %s requested, but hack/build-k8s.sh builds %s", p.version, Version)
	}
	if p.opts.BinDir == "" {
		dir, err := cluster.Binaries(ctx, os.Stderr)
		if err != nil {
			return "", err
		}
		p.opts.BinDir = dir
	}
	c, err := cluster.Start(ctx, p.opts)
	if err != nil {
		return "", err
	}
	p.c, p.kubeconfig = c, c.Kubeconfig
	return p.kubeconfig, nil
}

// CreateWithConfig has no configuration file format; it is Create.
func (p *Provider) CreateWithConfig(ctx context.Context, configFile string) (string, error) {
	if configFile != "" {
		return "", fmt.Errorf("local process cluster: configuration files are not supported (got %s); use WithOpts", configFile)
	}
	return p.Create(ctx)
}

func (p *Provider) GetKubeconfig() string { return p.kubeconfig }

func (p *Provider) GenerateKubeconfig(...string) (string, error) {
	if p.c == nil {
		return "", fmt.Errorf("local process cluster %s is not running", p.opts.Name)
	}
	return p.kubeconfig, nil
}

func (p *Provider) GetKubectlContext() string {
	if p.c == nil {
		return ""
	}
	return p.c.Name
}

// ExportLogs copies the control-plane and container logs to dest.
func (p *Provider) ExportLogs(_ context.Context, dest string) error {
	if p.c == nil {
		return nil
	}
	for _, sub := range []string{"logs", "pods/logs"} {
		src := filepath.Join(p.c.Dir, sub)
		entries, err := os.ReadDir(src)
		if err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dest, sub), 0o755); err != nil {
			return err
		}
		for _, e := range entries {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dest, sub, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (p *Provider) Destroy(ctx context.Context) error {
	if p.c == nil {
		return nil
	}
	err := p.c.Stop(ctx)
	p.c = nil
	return err
}

// WaitForControlPlane waits until every node is Ready; Create already waited
// for the API server and the controllers.
func (p *Provider) WaitForControlPlane(ctx context.Context, client klient.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var nodes corev1.NodeList
		err := client.Resources().List(ctx, &nodes)
		if err == nil && len(nodes.Items) > 0 && allReady(nodes.Items) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes not ready: %w (last error %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allReady(nodes []corev1.Node) bool {
	for _, n := range nodes {
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		if !ready {
			return false
		}
	}
	return true
}

func (p *Provider) KubernetesRestConfig() *rest.Config {
	if p.c == nil {
		return nil
	}
	return p.c.RESTConfig()
}
