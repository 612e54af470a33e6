package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"konductor.dev/sim/cluster/localpath"
	"konductor.dev/sim/cluster/node"
	"konductor.dev/sim/cluster/podnet"
	"konductor.dev/sim/cluster/proc"
	"konductor.dev/sim/cluster/services"
)

// NetworkMode chooses how pods get their network.
type NetworkMode string

const (
	// NetworkAuto uses namespaces where permitted, else loopback.
	NetworkAuto NetworkMode = ""
	// NetworkNamespaces gives each pod a network namespace on a bridge.
	NetworkNamespaces NetworkMode = "netns"
	// NetworkLoopback gives each pod a 127.x address in the host namespace.
	NetworkLoopback NetworkMode = "loopback"
)

// Options configure a cluster. Only BinDir is required.
type Options struct {
	// Name identifies the cluster on this host (state directory, process
	// marker). Default: a random name.
	Name string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and,
	// optionally, kube-scheduler, as printed by hack/build-k8s.sh. Without
	// kube-scheduler the node agent binds pods itself (zone spread only).
	BinDir string
	// StateRoot holds one directory per cluster. Default DefaultStateRoot().
	StateRoot string
	// Nodes to register. Default: one node per zone, zones a, b, c.
	Nodes []node.Spec
	// Images maps container images to local binaries for the node agent.
	Images node.ImageMap
	// Network chooses the pod network; default NetworkAuto.
	Network NetworkMode
	// Logf receives progress lines; default discards them.
	Logf func(format string, args ...any)
}

// DefaultStateRoot is where clusters keep their state unless told otherwise.
func DefaultStateRoot() string {
	if v := os.Getenv("KONDUCTOR_LOCALCLUSTER_STATE"); v != "" {
		return v
	}
	return filepath.Join(os.TempDir(), "konductor-localcluster")
}

// Cluster is a running control plane with its node agent.
type Cluster struct {
	Name string
	// Dir is the cluster's state directory (removed by Stop).
	Dir string
	// Kubeconfig is the path of an admin kubeconfig inside Dir.
	Kubeconfig string
	// Server is the API server URL on loopback.
	Server string
	// StartupTime is how long Start took.
	StartupTime time.Duration

	adminToken string
	caPEM      []byte
	network    podnet.Network
	procs      []*proc.Process
	agent      *node.Agent
	services   *services.Proxy
	volumes    *localpath.Provisioner
	forwarder  net.Listener
	logf       func(string, ...any)
	stopOnce   sync.Once
	stopErr    error
}

// controllers run by kube-controller-manager: what Deployments, Services,
// service accounts, garbage collection and persistent volumes (binding and
// the in-use protection finalizers; provisioning is package localpath's)
// need, and the HorizontalPodAutoscaler controller, which reads the
// resource, custom and external metrics APIs through the API server's
// aggregation layer (metrics-server, a metrics adapter). Node lifecycle,
// IPAM and attach/detach are left out: there are no real kubelets or
// clouds.
var controllers = []string{
	"serviceaccount-controller", "serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
	"namespace-controller", "garbage-collector-controller", "pod-garbage-collector-controller",
	"deployment-controller", "replicaset-controller", "statefulset-controller",
	"daemonset-controller", "job-controller", "cronjob-controller", "ttl-after-finished-controller",
	"disruption-controller", "endpoints-controller", "endpointslice-controller",
	"endpointslice-mirroring-controller", "service-cidr-controller",
	"persistentvolume-binder-controller", "persistentvolumeclaim-protection-controller",
	"persistentvolume-protection-controller", "horizontal-pod-autoscaler-controller",
}

// Start sweeps clusters left by crashed runs, then starts etcd, the API
// server, the controller manager, the scheduler and the node agent, and
// returns once nodes are registered and the default service account exists.
// On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	began := time.Now()
	if opts.BinDir == "" {
		return nil, errors.New("cluster options: BinDir is empty (run hack/build-k8s.sh)")
	}
	if opts.Name == "" {
		opts.Name = "kd" + randomHex(4)
	}
	if strings.ContainsAny(opts.Name, "/ =\x00") {
		return nil, fmt.Errorf("cluster options: Name %q may not contain '/', ' ', '=' or NUL", opts.Name)
	}
	if opts.StateRoot == "" {
		opts.StateRoot = DefaultStateRoot()
	}
	if len(opts.Nodes) == 0 {
		opts.Nodes = []node.Spec{
			{Name: "node-a", Zone: "zone-a"}, {Name: "node-b", Zone: "zone-b"}, {Name: "node-c", Zone: "zone-c"},
		}
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if _, err := Sweep(ctx, opts.StateRoot, logf); err != nil {
		// A leftover we cannot remove must not stop a new cluster; its
		// network index and name stay taken.
		logf("sweep stale clusters: %v", err)
	}

	dir := filepath.Join(opts.StateRoot, opts.Name)
	if err := claimDir(dir); err != nil {
		return nil, err
	}
	c = &Cluster{Name: opts.Name, Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), logf: logf}
	defer func() {
		if err != nil {
			_ = c.Stop(context.WithoutCancel(ctx))
			c = nil
		}
	}()
	for _, sub := range []string{"pki", "logs", "etcd", "pods", "apiserver-certs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return c, err
		}
	}

	if err := c.startNetwork(ctx, opts.Network); err != nil {
		return c, err
	}
	keys, err := newPKI(filepath.Join(dir, "pki"), []net.IP{c.network.Gateway()}, nil)
	if err != nil {
		return c, err
	}
	c.caPEM = keys.CACertPEM
	frontProxy, err := newFrontProxy(filepath.Join(dir, "pki"))
	if err != nil {
		return c, err
	}

	var etcdURL string
	err = c.retryOnPortClash("etcd", func() (err error) {
		etcdURL, err = c.startEtcd(ctx, opts.BinDir)
		return err
	})
	if err != nil {
		return c, err
	}
	tokens, err := c.writeTokens()
	if err != nil {
		return c, err
	}
	if err := c.retryOnPortClash("kube-apiserver", func() error { return c.startAPIServer(ctx, opts.BinDir, etcdURL, keys, frontProxy) }); err != nil {
		return c, err
	}
	if err := c.writeKubeconfig(c.Kubeconfig, "admin", c.adminToken); err != nil {
		return c, err
	}
	components := []string{"kube-controller-manager"}
	// kube-scheduler is optional: without it the node agent binds pods.
	_, statErr := os.Stat(filepath.Join(opts.BinDir, "kube-scheduler"))
	withScheduler := statErr == nil
	if withScheduler {
		components = append(components, "kube-scheduler")
	}
	for _, comp := range components {
		path := filepath.Join(dir, comp+".kubeconfig")
		if err := c.writeKubeconfig(path, comp, tokens[comp]); err != nil {
			return c, err
		}
		args := []string{"--kubeconfig=" + path, "--leader-elect=false", "--secure-port=0"}
		if comp == "kube-controller-manager" {
			args = append(args,
				"--controllers="+strings.Join(controllers, ","),
				"--root-ca-file="+keys.CACertFile,
				"--service-account-private-key-file="+keys.ServiceAccountKeyFile,
				"--service-cluster-ip-range="+podnet.ServiceCIDR(c.network.Index()),
				"--concurrent-deployment-syncs=5", "--concurrent-replicaset-syncs=5",
			)
		}
		if _, err := c.start(comp, exec.Command(filepath.Join(opts.BinDir, comp), args...)); err != nil {
			return c, err
		}
	}

	client, err := c.Client()
	if err != nil {
		return c, err
	}
	// The default StorageClass and its provisioner, as kind has.
	c.volumes, err = localpath.Start(ctx, localpath.Config{Client: client, Dir: filepath.Join(dir, "volumes"), Logf: logf})
	if err != nil {
		return c, err
	}
	podHost, podPort, err := c.startForwarder()
	if err != nil {
		return c, err
	}
	var hosts func(ns, hostname, ip string) []byte
	// The services proxy tells the agent to rewrite hosts files once the
	// agent exists.
	var agent atomic.Pointer[node.Agent]
	if _, bridged := c.network.(*podnet.Bridged); bridged {
		// Service IPs and names (see package services).
		c.services, err = services.Start(ctx, services.Config{
			Client: client, Index: c.network.Index(), Logf: logf,
			OnChange: func() {
				if a := agent.Load(); a != nil {
					a.RefreshHosts()
				}
			},
		})
		if err != nil {
			return c, err
		}
		hosts = c.services.Hosts
	}
	c.agent, err = node.Start(ctx, node.Config{
		Hosts:         hosts,
		Bind:          !withScheduler,
		Cluster:       c.Name,
		Client:        client,
		Nodes:         opts.Nodes,
		Network:       c.network,
		Images:        opts.Images,
		PodDir:        filepath.Join(dir, "pods"),
		APIServerHost: podHost,
		APIServerPort: podPort,
		CACert:        c.caPEM,
		ServingCert:   &keys.KubeletServing,
		Logf:          logf,
	})
	if err != nil {
		return c, err
	}
	agent.Store(c.agent)
	// Pods can be created once the service-account controller has made the
	// default account (admission refuses pods without it).
	if err := c.waitFor(ctx, "the default service account", 60*time.Second, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return c, err
	}
	c.StartupTime = time.Since(began)
	logf("cluster %s up in %s (kubeconfig %s)", c.Name, c.StartupTime.Round(time.Millisecond), c.Kubeconfig)
	return c, nil
}

func (c *Cluster) startNetwork(ctx context.Context, mode NetworkMode) error {
	var err error
	switch mode {
	case NetworkNamespaces:
		c.network, err = podnet.NewBridged(ctx)
	case NetworkLoopback:
		c.network, err = c.loopback()
	case NetworkAuto:
		if podnet.Supported() == nil {
			c.network, err = podnet.NewBridged(ctx)
		} else {
			c.network, err = c.loopback()
		}
	default:
		return fmt.Errorf("cluster options: Network %q is not one of %q, %q, %q", mode, NetworkAuto, NetworkNamespaces, NetworkLoopback)
	}
	if err != nil {
		return err
	}
	_, bridged := c.network.(*podnet.Bridged)
	state := fmt.Sprintf("%d %t\n", c.network.Index(), bridged)
	return os.WriteFile(filepath.Join(c.Dir, "network"), []byte(state), 0o600)
}

// loopback picks an index for 127.(100+i)/16 not used by a live cluster.
func (c *Cluster) loopback() (podnet.Network, error) {
	taken := map[int]bool{}
	entries, _ := os.ReadDir(filepath.Dir(c.Dir))
	for _, e := range entries {
		if idx, _, ok := readNetwork(filepath.Join(filepath.Dir(c.Dir), e.Name())); ok {
			taken[idx] = true
		}
	}
	for i := range 100 {
		if !taken[i] {
			return podnet.NewLoopback(i), nil
		}
	}
	return nil, errors.New("no free loopback pod range")
}

func (c *Cluster) startEtcd(ctx context.Context, binDir string) (string, error) {
	clientPort, peerPort, err := freePort(), freePort(), error(nil)
	if clientPort == 0 || peerPort == 0 {
		return "", errors.New("no free port on 127.0.0.1")
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	_, err = c.start("etcd", exec.Command(filepath.Join(binDir, "etcd"),
		"--name=localcluster", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=localcluster="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	))
	if err != nil {
		return "", err
	}
	err = c.waitFor(ctx, "etcd", 30*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, clientURL+"/health", "")
	})
	return clientURL, err
}

func (c *Cluster) writeTokens() (map[string]string, error) {
	tokens := map[string]string{}
	var lines []string
	// Components act as members of system:masters: the cluster is a test
	// bed, and their bootstrap roles lag behind the controllers we enable.
	for _, user := range []string{"admin", "kube-controller-manager", "kube-scheduler"} {
		tokens[user] = randomHex(24)
		name := user
		if user != "admin" {
			name = "system:" + user
		}
		lines = append(lines, fmt.Sprintf("%s,%s,%s,\"system:masters\"", tokens[user], name, name))
	}
	c.adminToken = tokens["admin"]
	return tokens, os.WriteFile(filepath.Join(c.Dir, "pki", "tokens.csv"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

func (c *Cluster) startAPIServer(ctx context.Context, binDir, etcdURL string, keys *pki, fp *frontProxy) error {
	port := freePort()
	if port == 0 {
		return errors.New("no free port on 127.0.0.1")
	}
	c.Server = "https://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(filepath.Join(binDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		// The advertise address is loopback, which the endpoint reconciler
		// refuses; pods reach the API server through the node agent's
		// forwarder instead of the kubernetes Service endpoints.
		"--endpoint-reconciler-type=none",
		"--cert-dir="+filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file="+keys.ServingCertFile, "--tls-private-key-file="+keys.ServingKeyFile,
		"--client-ca-file="+keys.CACertFile,
		// pods/log and nodes/proxy reach the node agent's kubelet API at
		// the Node's InternalIP and daemonEndpoints port, verified by the
		// cluster CA, with a client certificate the agent trusts.
		"--kubelet-client-certificate="+keys.KubeletClientCertFile,
		"--kubelet-client-key="+keys.KubeletClientKeyFile,
		"--kubelet-certificate-authority="+keys.CACertFile,
		"--kubelet-preferred-address-types=InternalIP",
		"--token-auth-file="+filepath.Join(c.Dir, "pki", "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+keys.ServiceAccountKeyFile,
		"--service-account-signing-key-file="+keys.ServiceAccountKeyFile,
		"--service-cluster-ip-range="+podnet.ServiceCIDR(c.network.Index()),
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--event-ttl=30m",
	)
	cmd.Args = append(cmd.Args, fp.apiServerFlags()...)
	_, err := c.start("kube-apiserver", cmd)
	if err != nil {
		return err
	}
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	return c.waitFor(ctx, "kube-apiserver /readyz", 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, hc, c.Server+"/readyz", c.adminToken)
	})
}

// startForwarder gives pods a route to the API server: in a namespace, pods
// cannot reach the host's loopback, so a TCP forwarder listens on the
// bridge gateway (the serving certificate names it). In loopback mode pods
// reach the API server directly.
func (c *Cluster) startForwarder() (string, int, error) {
	port, _ := strconv.Atoi(c.Server[strings.LastIndexByte(c.Server, ':')+1:])
	if _, ok := c.network.(*podnet.Bridged); !ok {
		return "127.0.0.1", port, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.network.Gateway().String(), "443"))
	if err != nil {
		return "", 0, fmt.Errorf("API server forwarder for pods: %w", err)
	}
	c.forwarder = ln
	target := "127.0.0.1:" + strconv.Itoa(port)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go pipe(conn, target)
		}
	}()
	return c.network.Gateway().String(), 443, nil
}

func pipe(in net.Conn, target string) {
	defer in.Close()
	out, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}

// start runs a control-plane binary with its log in logs/<name>.log.
func (c *Cluster) start(name string, cmd *exec.Cmd) (*proc.Process, error) {
	p, err := proc.Start(c.Name, name, cmd, filepath.Join(c.Dir, "logs", name+".log"))
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	c.logf("started %s (pid %d)", name, p.Pid())
	return p, nil
}

// waitFor polls check until it succeeds, a control-plane process exits, or
// timeout passes; the error then names what was awaited and quotes the logs
// of the process that died.
func (c *Cluster) waitFor(ctx context.Context, what string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(callCtx)
		callCancel()
		if last == nil {
			return nil
		}
		for _, p := range c.procs {
			select {
			case <-p.Done():
				return fmt.Errorf("waiting for %s: %s exited (%v); log tail:\n%s", what, p.Name, p.Err(), c.logTail(p.Name, 20))
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func (c *Cluster) logTail(name string, lines int) string {
	data, _ := os.ReadFile(filepath.Join(c.Dir, "logs", name+".log"))
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// RESTConfig is an admin client configuration.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		QPS:             100,
		Burst:           200,
	}
}

// Client is an admin clientset.
func (c *Cluster) Client() (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(c.RESTConfig())
}

func (c *Cluster) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.caPEM) {
		return nil, errors.New("cluster CA does not parse")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

func (c *Cluster) writeKubeconfig(path, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: user, Namespace: corev1.NamespaceDefault}
	cfg.CurrentContext = c.Name
	return clientcmd.WriteToFile(*cfg, path)
}

// Memory is the resident memory of each control-plane process, in bytes.
func (c *Cluster) Memory() map[string]int64 {
	out := map[string]int64{}
	for _, p := range c.procs {
		if rss, err := proc.RSS(p.Pid()); err == nil {
			out[p.Name] = rss
		}
	}
	return out
}

// CPU is the CPU time (user and system) each control-plane process has
// used so far.
func (c *Cluster) CPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range c.procs {
		if used, err := proc.CPU(p.Pid()); err == nil {
			out[p.Name] = used
		}
	}
	return out
}

// Stop stops the node agent (and with it every pod), the control plane in
// reverse order, removes the pod network and the state directory, and
// finally kills anything still carrying the cluster's marker. It is safe to
// call more than once.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		var errs []error
		if c.agent != nil {
			errs = append(errs, c.agent.Stop(ctx))
		}
		if c.services != nil {
			errs = append(errs, c.services.Stop(ctx))
		}
		if c.volumes != nil {
			c.volumes.Stop()
		}
		if c.forwarder != nil {
			_ = c.forwarder.Close()
		}
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].Stop(5 * time.Second)
		}
		errs = append(errs, proc.KillMarked(c.Name, 10*time.Second))
		if c.network != nil {
			errs = append(errs, c.network.Destroy(ctx))
		}
		errs = append(errs, os.RemoveAll(c.Dir))
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

func httpOK(ctx context.Context, hc *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Network is the cluster's pod network.
func (c *Cluster) Network() podnet.Network { return c.network }
