package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/e2e-framework/klient"
	"sigs.k8s.io/e2e-framework/support"
	kindv1alpha4 "sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"
)

// ProxyNodePort is the NodePort the suite gives the Kong proxy Service; the
// kind control-plane node maps it to a port on the host's loopback.
const ProxyNodePort = 30080

// ProxyTLSNodePort is the NodePort of the proxy Service's port 443.
const ProxyTLSNodePort = 30443

// KindCluster is a support.E2EClusterProvider that drives kind through its
// Go library (sigs.k8s.io/kind/pkg/cluster), so no kind binary is needed,
// only Docker. Its cluster has one control-plane and two workers labelled
// with zones, and maps ProxyNodePort to HostProxyPort and ProxyTLSNodePort to
// HostProxyTLSPort on 127.0.0.1.
type KindCluster struct {
	name, nodeImage, kubeconfig string
	// HostProxyPort is the host port mapped to ProxyNodePort,
	// HostProxyTLSPort the one mapped to ProxyTLSNodePort.
	HostProxyPort, HostProxyTLSPort int
	// Keep leaves an existing cluster of the same name in place and reuses
	// it, and makes Destroy a no-op, for fast local iterations.
	Keep   bool
	docker string
	rest   *rest.Config
	kind   *kindcluster.Provider
}

var _ support.E2EClusterProviderWithImageLoader = (*KindCluster)(nil)

// NewKindCluster returns a provider that uses the docker binary named docker.
func NewKindCluster(docker string) *KindCluster {
	if docker == "" {
		docker = "docker"
	}
	return &KindCluster{docker: docker, HostProxyPort: ProxyNodePort, HostProxyTLSPort: ProxyTLSNodePort}
}

func (k *KindCluster) SetDefaults() support.E2EClusterProvider {
	if k.kind == nil {
		k.kind = kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(kindcmd.NewLogger()))
	}
	return k
}

func (k *KindCluster) WithName(name string) support.E2EClusterProvider { k.name = name; return k }

// WithVersion takes a kind node image, e.g. "kindest/node:v1.35.0"; empty
// means kind's default for its release.
func (k *KindCluster) WithVersion(image string) support.E2EClusterProvider {
	k.nodeImage = image
	return k
}

// WithPath is meaningless without a kind binary; it is accepted and ignored.
func (k *KindCluster) WithPath(string) support.E2EClusterProvider { return k }

func (k *KindCluster) WithOpts(opts ...support.ClusterOpts) support.E2EClusterProvider {
	for _, o := range opts {
		o(k)
	}
	return k
}

// Config is the kind cluster configuration the suite uses.
func (k *KindCluster) Config() *kindv1alpha4.Cluster {
	cfg := &kindv1alpha4.Cluster{
		TypeMeta: kindv1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Nodes: []kindv1alpha4.Node{
			{
				Role:   kindv1alpha4.ControlPlaneRole,
				Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"},
				ExtraPortMappings: []kindv1alpha4.PortMapping{{
					ContainerPort: ProxyNodePort, HostPort: int32(k.HostProxyPort),
					ListenAddress: "127.0.0.1", Protocol: kindv1alpha4.PortMappingProtocolTCP,
				}, {
					ContainerPort: ProxyTLSNodePort, HostPort: int32(k.HostProxyTLSPort),
					ListenAddress: "127.0.0.1", Protocol: kindv1alpha4.PortMappingProtocolTCP,
				}},
			},
			{Role: kindv1alpha4.WorkerRole, Labels: map[string]string{corev1.LabelTopologyZone: "zone-b"}},
			{Role: kindv1alpha4.WorkerRole, Labels: map[string]string{corev1.LabelTopologyZone: "zone-c"}},
		},
	}
	kindv1alpha4.SetDefaultsCluster(cfg)
	return cfg
}

// Create creates the cluster (or, with Keep, reuses one of the same name)
// and writes its kubeconfig to a temporary file.
func (k *KindCluster) Create(ctx context.Context, _ ...string) (string, error) {
	k.SetDefaults()
	if k.name == "" {
		return "", errors.New("kind: cluster name is empty")
	}
	existing, err := k.kind.List()
	if err != nil {
		return "", fmt.Errorf("kind: listing clusters: %w", err)
	}
	if slices.Contains(existing, k.name) && !k.Keep {
		return "", fmt.Errorf("kind: a cluster named %q exists already; delete it (kind delete cluster --name %s) or set KONDUCTOR_E2E_KEEP=1 to reuse it", k.name, k.name)
	}
	if !slices.Contains(existing, k.name) {
		opts := []kindcluster.CreateOption{
			kindcluster.CreateWithV1Alpha4Config(k.Config()),
			kindcluster.CreateWithWaitForReady(3 * time.Minute),
			kindcluster.CreateWithDisplayUsage(false),
			kindcluster.CreateWithDisplaySalutation(false),
		}
		if k.nodeImage != "" {
			opts = append(opts, kindcluster.CreateWithNodeImage(k.nodeImage))
		}
		// kind's Create takes no context; it is bounded by its own wait.
		if err := k.kind.Create(k.name, opts...); err != nil {
			return "", fmt.Errorf("kind: creating cluster %q: %w", k.name, err)
		}
	}
	return k.GenerateKubeconfig()
}

func (k *KindCluster) CreateWithConfig(ctx context.Context, configFile string) (string, error) {
	if configFile != "" {
		return "", fmt.Errorf("kind: the suite builds its own cluster configuration; config file %s is not supported", configFile)
	}
	return k.Create(ctx)
}

func (k *KindCluster) GenerateKubeconfig(...string) (string, error) {
	raw, err := k.kind.KubeConfig(k.name, false)
	if err != nil {
		return "", fmt.Errorf("kind: kubeconfig of %q: %w", k.name, err)
	}
	f, err := os.CreateTemp("", "kind-"+k.name+"-kubeconfig-")
	if err != nil {
		return "", err
	}
	if _, err := io.WriteString(f, raw); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(raw))
	if err != nil {
		return "", fmt.Errorf("kind: kubeconfig of %q: %w", k.name, err)
	}
	k.kubeconfig, k.rest = f.Name(), cfg
	return k.kubeconfig, nil
}

func (k *KindCluster) GetKubeconfig() string              { return k.kubeconfig }
func (k *KindCluster) GetKubectlContext() string          { return "kind-" + k.name }
func (k *KindCluster) KubernetesRestConfig() *rest.Config { return k.rest }

func (k *KindCluster) ExportLogs(_ context.Context, dest string) error {
	return k.kind.CollectLogs(k.name, dest)
}

// Destroy deletes the cluster (unless Keep) and its kubeconfig file.
func (k *KindCluster) Destroy(context.Context) error {
	if k.kubeconfig != "" {
		_ = os.Remove(k.kubeconfig)
	}
	if k.Keep {
		return nil
	}
	return k.kind.Delete(k.name, "")
}

// WaitForControlPlane waits until every node is Ready (kind already waited
// for the control plane).
func (k *KindCluster) WaitForControlPlane(ctx context.Context, client klient.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var nodes corev1.NodeList
		err := client.Resources().List(ctx, &nodes)
		if err == nil && len(nodes.Items) > 0 && nodesReady(nodes.Items) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kind: nodes not Ready: %w (last error %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func nodesReady(nodes []corev1.Node) bool {
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

// LoadImage copies a local Docker image into every node, as
// `kind load docker-image` does: `docker save` streamed into containerd.
func (k *KindCluster) LoadImage(ctx context.Context, image string, _ ...string) error {
	nodes, err := k.kind.ListInternalNodes(k.name)
	if err != nil {
		return fmt.Errorf("kind: nodes of %q: %w", k.name, err)
	}
	for _, n := range nodes {
		if err := k.loadInto(ctx, image, n); err != nil {
			return err
		}
	}
	return nil
}

// loadInto streams `docker save image` into node's containerd; a node
// keeps no copy on disk.
func (k *KindCluster) loadInto(ctx context.Context, image string, node nodes.Node) error {
	save := exec.CommandContext(ctx, k.docker, "save", image)
	out, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr limitedBuffer
	save.Stderr = &stderr
	if err := save.Start(); err != nil {
		return fmt.Errorf("docker save %s: %w", image, err)
	}
	loadErr := nodeutils.LoadImageArchive(node, out)
	_, _ = io.Copy(io.Discard, out) // let docker save finish if the load stopped early
	if err := save.Wait(); err != nil {
		return fmt.Errorf("docker save %s: %w: %s", image, err, stderr.String())
	}
	if loadErr != nil {
		return fmt.Errorf("kind: loading %s into node %s: %w", image, node.String(), loadErr)
	}
	return nil
}

// LoadImageArchive loads an image archive (docker save output) into every node.
func (k *KindCluster) LoadImageArchive(_ context.Context, archive string, _ ...string) error {
	nodes, err := k.kind.ListInternalNodes(k.name)
	if err != nil {
		return fmt.Errorf("kind: nodes of %q: %w", k.name, err)
	}
	for _, n := range nodes {
		f, err := os.Open(filepath.Clean(archive))
		if err != nil {
			return err
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("kind: loading %s into node %s: %w", archive, n.String(), err)
		}
	}
	return nil
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
