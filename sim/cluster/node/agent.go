// Package node is the "process kubelet" of the local process cluster. It
// registers Nodes with the API server, takes the pods the scheduler binds to
// them and runs every container as a local process: the image names a local
// binary (ImageMap), the pod gets its own network namespace (podnet), each
// container a private mount namespace with its volumes at their mountPaths
// (volumes.go: emptyDir, configMap, secret, downwardAPI, projected,
// persistentVolumeClaim, hostPath) and runs as its securityContext's user,
// groups and capabilities (security.go); probes drive the pod's conditions,
// lifecycle hooks run, containers restart by policy with back-off, and
// deletion is graceful (preStop hook, SIGTERM, SIGKILL at the end of the
// grace period). The agent reports pod status so the real EndpointSlice
// controller publishes endpoints. Environment variables follow the
// kubelet's rules, downward API included (env.go, resources.go).
// Container output is logged as the kubelet logs it (CRI format, one file
// per run, the previous run kept), and each node serves the kubelet API over
// TLS, with the kubelet's authentication and authorization, so pods/log
// (kubectl logs) works through the API server, and /metrics/resource gives
// metrics-server the containers' CPU and memory.
//
// Not provided: resource limits (nothing is enforced; resourceFieldRef
// reports the declared values), image pulls, exec/attach/port-forward
// through the API, gRPC probes, volume types other than those above
// (refused with an error naming them). Without root there are no mount
// namespaces: containers needing volumes or another user are refused.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"konductor.dev/sim/cluster/podnet"
)

// Spec describes one Node to register.
type Spec struct {
	Name string
	// Zone becomes the topology.kubernetes.io/zone label.
	Zone   string
	Labels map[string]string
}

// Config wires an Agent.
type Config struct {
	// Cluster names the cluster; it marks every process started (see proc).
	Cluster string
	Client  kubernetes.Interface
	Nodes   []Spec
	Network podnet.Network
	Images  ImageMap
	// PodDir holds a directory per pod (service-account files, logs).
	PodDir string
	// APIServerHost and APIServerPort are how pods reach the API server;
	// they become KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.
	APIServerHost string
	APIServerPort int
	// CACert is the cluster CA (ca.crt of the service-account files). The
	// kubelet API trusts client certificates it signed.
	CACert []byte
	// ServingCert, a certificate for the agent's host address signed by the
	// cluster CA, makes every node serve the kubelet API (container logs,
	// /healthz) on a port of its own, published in the Node's
	// status.daemonEndpoints, so the API server can proxy pods/log to it and
	// metrics-server can scrape /metrics/resource.
	// Without it nodes serve nothing and logs are only files.
	ServingCert *tls.Certificate
	// Bind makes the agent bind unscheduled pods to its nodes, for clusters
	// without kube-scheduler.
	Bind bool
	// Hosts renders a pod's /etc/hosts (Service names); nil gives one with
	// localhost and the pod's own name only.
	Hosts func(namespace, hostname, podIP string) []byte
	// RestartBackoff is the first delay before restarting a container; it
	// doubles up to MaxRestartBackoff. Defaults 1 s and 30 s (the kubelet
	// uses 10 s and 5 min; tests want faster).
	RestartBackoff, MaxRestartBackoff time.Duration
	// VolumeRefresh is how often configMap, secret, downwardAPI and
	// projected volumes are rewritten from the API; default 20 s (the
	// kubelet's sync period is a minute; tests want faster).
	VolumeRefresh time.Duration
	Logf          func(format string, args ...any)
}

// Agent runs the pods bound to its nodes.
type Agent struct {
	cfg    Config
	nodes  map[string]bool
	hostIP string
	// allocatable is what every node reports, and what resourceFieldRef
	// shows for limits a container leaves unset.
	allocatable corev1.ResourceList
	ctx         context.Context
	cancel      context.CancelFunc
	done        chan struct{}

	logs    *logStore
	servers []*kubeletServer

	mu      sync.Mutex
	pods    map[types.UID]*podRunner
	wg      sync.WaitGroup
	pending chan struct{} // an unscheduled pod appeared (Bind)
}

// ServiceAccountDir is where processes find their service-account token,
// as in a container; each pod's process sees its own files there through a
// private mount namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Start registers the nodes and begins running their pods.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Client == nil || cfg.Network == nil || cfg.PodDir == "" || cfg.Cluster == "" {
		return nil, errors.New("node config: Cluster, Client, Network and PodDir are required")
	}
	if len(cfg.Nodes) == 0 {
		return nil, errors.New("node config: Nodes is empty")
	}
	if cfg.RestartBackoff == 0 {
		cfg.RestartBackoff = time.Second
	}
	if cfg.MaxRestartBackoff == 0 {
		cfg.MaxRestartBackoff = 30 * time.Second
	}
	if cfg.VolumeRefresh == 0 {
		cfg.VolumeRefresh = defaultVolumeRefresh
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if os.Geteuid() == 0 {
		// The bind-mount target must exist in the host's tree; it stays
		// empty there.
		if err := os.MkdirAll(ServiceAccountDir, 0o755); err != nil {
			return nil, err
		}
	}
	a := &Agent{cfg: cfg, nodes: map[string]bool{}, pods: map[types.UID]*podRunner{}, done: make(chan struct{}),
		hostIP: cfg.Network.Gateway().String(), pending: make(chan struct{}, 1), allocatable: nodeCapacity(),
		logs: newLogStore(filepath.Join(cfg.PodDir, "logs"), time.Now)}
	a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, spec := range cfg.Nodes {
		var port int32
		if cfg.ServingCert != nil {
			srv, err := a.startKubeletServer(spec.Name)
			if err != nil {
				a.stopServers()
				return nil, err
			}
			a.servers = append(a.servers, srv)
			port = srv.Port()
		}
		if err := a.register(ctx, spec, port); err != nil {
			a.stopServers()
			return nil, err
		}
		a.nodes[spec.Name] = true
	}

	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	podInformer := factory.Core().V1().Pods().Informer()
	_, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.observe(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.observe(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				a.forget(pod)
			}
		},
	})
	if err != nil {
		a.stopServers()
		return nil, err
	}
	if cfg.Bind {
		go func() {
			for {
				select {
				case <-a.ctx.Done():
					return
				case <-a.pending:
					a.bindPending(a.ctx, func() []*corev1.Pod {
						var pods []*corev1.Pod
						for _, obj := range podInformer.GetStore().List() {
							pods = append(pods, obj.(*corev1.Pod))
						}
						return pods
					})
				}
			}
		}()
	}
	factory.Start(a.ctx.Done())
	go func() {
		<-a.ctx.Done()
		factory.Shutdown()
		close(a.done)
	}()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced) {
		a.stopServers()
		return nil, errors.New("node agent: pod informer did not sync")
	}
	return a, nil
}

// register creates or refreshes a Node that is Ready and has room for pods;
// kubeletPort (when not 0) is where its kubelet API listens.
func (a *Agent) register(ctx context.Context, spec Spec, kubeletPort int32) error {
	labels := map[string]string{
		corev1.LabelHostname:   spec.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
	}
	if spec.Zone != "" {
		labels[corev1.LabelTopologyZone] = spec.Zone
	}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	capacity := a.allocatable
	now := metav1.Now()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: labels},
	}
	status := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "ProcessKubeletReady",
			Message: "konductor process kubelet is running", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.hostIP},
			{Type: corev1.NodeHostName, Address: spec.Name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: kubeletPort}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: "v1.37.2", OperatingSystem: "linux", Architecture: "amd64",
			ContainerRuntimeVersion: "konductor-process://1",
		},
	}
	nodes := a.cfg.Client.CoreV1().Nodes()
	got, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = nodes.Get(ctx, spec.Name, metav1.GetOptions{})
		if err == nil {
			got.Labels = labels
			got, err = nodes.Update(ctx, got, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", spec.Name, err)
	}
	got.Status = status
	got, err = nodes.UpdateStatus(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("register node %s: status: %w", spec.Name, err)
	}
	// Admission (TaintNodesByCondition) gives a new node the not-ready
	// taint; the node lifecycle controller, which we do not run, would lift
	// it once the node reports Ready. We do that here.
	kept := slices.DeleteFunc(slices.Clone(got.Spec.Taints), func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
	})
	if len(kept) != len(got.Spec.Taints) {
		got.Spec.Taints = kept
		if _, err := nodes.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("register node %s: remove not-ready taint: %w", spec.Name, err)
		}
	}
	return nil
}

// nodeCapacity is each node's capacity and allocatable: room for every
// pod the tests run (processes share the host; nothing is enforced).
func nodeCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("16"),
		corev1.ResourceMemory:           resource.MustParse("64Gi"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		corev1.ResourcePods:             resource.MustParse("110"),
	}
}

// observe starts a runner for a new pod on one of our nodes and passes
// deletion requests to existing runners.
func (a *Agent) observe(pod *corev1.Pod) {
	if pod.Spec.NodeName == "" && a.cfg.Bind {
		select {
		case a.pending <- struct{}{}:
		default:
		}
		return
	}
	if !a.nodes[pod.Spec.NodeName] {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx.Err() != nil {
		return
	}
	r, ok := a.pods[pod.UID]
	if !ok {
		if pod.DeletionTimestamp != nil {
			// Never started here (e.g. a previous agent's pod): nothing to
			// stop, only the object to finish.
			go a.finishDeletion(pod)
			return
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return
		}
		r = newPodRunner(a, pod)
		a.pods[pod.UID] = r
		a.logs.addPod(r.pod)
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			r.run()
			a.logs.removePod(r.pod)
			a.mu.Lock()
			delete(a.pods, pod.UID)
			a.mu.Unlock()
		}()
		return
	}
	if pod.DeletionTimestamp != nil {
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		r.terminate(time.Duration(grace) * time.Second)
	}
}

// forget stops the processes of a pod whose object is gone (force-deleted).
func (a *Agent) forget(pod *corev1.Pod) {
	a.mu.Lock()
	r, ok := a.pods[pod.UID]
	a.mu.Unlock()
	if ok {
		r.terminate(0)
	}
}

// finishDeletion removes a terminating pod object once nothing runs for it.
func (a *Agent) finishDeletion(pod *corev1.Pod) {
	zero := int64(0)
	err := a.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(a.ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && a.ctx.Err() == nil {
		a.cfg.Logf("node agent: delete pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// RefreshHosts rewrites the /etc/hosts of every running pod, e.g. after
// Services changed.
func (a *Agent) RefreshHosts() {
	a.mu.Lock()
	runners := make([]*podRunner, 0, len(a.pods))
	for _, r := range a.pods {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	for _, r := range runners {
		if err := r.writeHosts(); err != nil {
			r.logf("rewrite hosts: %v", err)
		}
	}
}

// Stop kills every pod's processes (without grace: the cluster is going
// away), removes their network namespaces and stops watching.
func (a *Agent) Stop(context.Context) error {
	a.mu.Lock()
	a.cancel()
	runners := make([]*podRunner, 0, len(a.pods))
	for _, r := range a.pods {
		runners = append(runners, r)
	}
	a.mu.Unlock()
	for _, r := range runners {
		r.shutdown()
	}
	a.wg.Wait()
	<-a.done
	a.stopServers()
	return nil
}

// stopServers cancels the agent's context (ending log followers) and
// closes the kubelet API listeners.
func (a *Agent) stopServers() {
	a.cancel()
	for _, s := range a.servers {
		s.stop()
	}
}
