package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/engine"
	"konductor.dev/chaos/journal"
)

// Observe journals lock holder changes (polling every 100ms, so failovers
// are timed closely), pod readiness as the watch delivers it (so the time
// from a kill to the pod reported not ready is exact) and each Kong's
// configuration hash (every 500ms).
func (t *Target) Observe(ctx context.Context, j *journal.Writer) {
	pods := newPodPhases(j)
	factory := informers.NewSharedInformerFactoryWithOptions(t.cs, 0, informers.WithNamespace(t.ns))
	podInf := factory.Core().V1().Pods().Informer()
	_, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pods.note(obj, false) },
		UpdateFunc: func(_, obj any) { pods.note(obj, false) },
		DeleteFunc: func(obj any) { pods.note(obj, true) },
	})
	if err == nil {
		factory.Start(ctx.Done())
		defer factory.Shutdown()
	}
	holder, first := "", true
	hashes := map[string]string{}
	for tick := 0; ; tick++ {
		if t.lock != "" {
			if rec, err := t.leaderRecord(ctx); err == nil && (first || rec.HolderIdentity != holder) {
				holder, first = rec.HolderIdentity, false
				j.Add(journal.Record{Kind: journal.KindEvent, Event: journal.EventLockHolder, Value: holder})
			}
		}
		if tick%5 == 0 && podInf.HasSynced() {
			var list []*corev1.Pod
			for _, obj := range podInf.GetStore().List() {
				if p, ok := obj.(*corev1.Pod); ok {
					list = append(list, p)
				}
			}
			t.observeHashes(ctx, j, list, hashes)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podPhases journals each pod's readiness as the watch delivers it.
type podPhases struct {
	j      *journal.Writer
	mu     sync.Mutex
	phases map[string]string
}

func newPodPhases(j *journal.Writer) *podPhases {
	return &podPhases{j: j, phases: map[string]string{}}
}

func (pp *podPhases) note(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	phase := "NotReady"
	switch {
	case deleted:
		phase = "Deleted"
	case p.DeletionTimestamp != nil:
		phase = "Terminating"
	case podReady(p):
		phase = "Ready"
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.phases[p.Name] == phase {
		return
	}
	if deleted {
		delete(pp.phases, p.Name)
	} else {
		pp.phases[p.Name] = phase
	}
	pp.j.Add(journal.Record{Kind: journal.KindEvent, Event: journal.EventPodPhase, Subject: p.Name, Value: phase})
}

// configHash is the configuration hash a Kong reports on its Status API
// ("" when it does not answer).
func (t *Target) configHash(ctx context.Context, ip string) string {
	var st struct {
		Hash string `json:"configuration_hash"`
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := t.getJSON(ctx, "http://"+hostPort(ip, t.ports.status)+"/status", &st); err != nil {
		return ""
	}
	return st.Hash
}

func (t *Target) leaderRecord(ctx context.Context) (resourcelock.LeaderElectionRecord, error) {
	var rec resourcelock.LeaderElectionRecord
	cm, err := t.cs.CoreV1().ConfigMaps(t.ns).Get(ctx, t.lock, metav1.GetOptions{})
	if err != nil {
		return rec, err
	}
	raw, ok := cm.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]
	if !ok {
		return rec, fmt.Errorf("ConfigMap %s/%s has no annotation %s", t.ns, t.lock, resourcelock.LeaderElectionRecordAnnotationKey)
	}
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return rec, fmt.Errorf("ConfigMap %s/%s: annotation %s: %w", t.ns, t.lock, resourcelock.LeaderElectionRecordAnnotationKey, err)
	}
	return rec, nil
}

// holderPod is the pod named by a holder identity (<pod>_<suffix>).
func holderPod(identity string) string {
	pod, _, _ := strings.Cut(identity, "_")
	return pod
}

// Check implements engine.Target.
func (t *Target) Check(ctx context.Context, p drill.Probe, j *journal.Writer) (float64, error) {
	switch p.Type {
	case drill.ProbePropagation:
		return t.propagation(ctx, p)
	case drill.ProbeConfigHash:
		return 0, t.hashesAgree(ctx)
	case drill.ProbeSingleLeader:
		return 0, t.singleLeader(ctx)
	case drill.ProbeSingleWriter:
		return 0, t.singleWriter(ctx)
	case drill.ProbeControllerReady:
		return 0, t.controllersReady(ctx)
	}
	return 0, fmt.Errorf("probe type %s is not a one-shot check", p.Type)
}

var probeSeq atomic.Int64

// propagation creates an Ingress for a new host and measures the time
// until every Kong replica routes it.
func (t *Target) propagation(ctx context.Context, p drill.Probe) (float64, error) {
	start := time.Now()
	name, host, err := t.applyProbeIngress(ctx)
	if err != nil {
		return 0, err
	}
	err = t.waitServing(ctx, "/", host, p.Tolerance.Within.D())
	took := time.Since(start)
	if derr := t.deleteProbeIngress(context.WithoutCancel(ctx), name); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		return took.Seconds(), fmt.Errorf("host %s: %w", host, err)
	}
	return took.Seconds(), nil
}

// applyProbeIngress creates an Ingress for a new host (removed by the
// remove-probe-objects rollback if the drill does not remove it first).
func (t *Target) applyProbeIngress(ctx context.Context) (name, host string, err error) {
	n := probeSeq.Add(1)
	name = fmt.Sprintf("chaos-probe-%d", n)
	host = fmt.Sprintf("p%d-%d.chaos.test", n, time.Now().UnixNano()%1e9)
	t.mu.Lock()
	t.probeIngresses = append(t.probeIngresses, name)
	t.mu.Unlock()
	return name, host, t.ap.apply(ctx, []*unstructured.Unstructured{ingressObject(name, host)})
}

func (t *Target) deleteProbeIngress(ctx context.Context, name string) error {
	err := t.cs.NetworkingV1().Ingresses(EchoNamespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	t.mu.Lock()
	t.probeIngresses = slices.DeleteFunc(t.probeIngresses, func(s string) bool { return s == name })
	t.mu.Unlock()
	return nil
}

func (t *Target) hashesAgree(ctx context.Context) error {
	if !t.dbless {
		return engine.Skipped("Kong with a database reports no configuration hash; the nodes share the database")
	}
	if t.ports.status == 0 {
		return engine.Skipped("the Kong container exposes no status port")
	}
	kongs, err := t.readyKongs(ctx)
	if err != nil {
		return err
	}
	if len(kongs) == 0 {
		return errors.New("no Kong pod is ready")
	}
	seen := map[string][]string{}
	for _, k := range kongs {
		h := t.configHash(ctx, k.Status.PodIP)
		if h == "" {
			return fmt.Errorf("Kong %s reports no configuration hash", k.Name)
		}
		seen[h] = append(seen[h], k.Name)
	}
	if len(seen) > 1 {
		return fmt.Errorf("Kongs disagree: %v", seen)
	}
	return nil
}

func (t *Target) singleLeader(ctx context.Context) error {
	if t.lock == "" {
		return fmt.Errorf("overlay %s has no leader election (each controller configures its own Kong)", t.d.Target.Overlay)
	}
	rec, err := t.leaderRecord(ctx)
	if err != nil {
		return err
	}
	if rec.HolderIdentity == "" {
		return fmt.Errorf("ConfigMap %s/%s: no holder", t.ns, t.lock)
	}
	if expiry := rec.RenewTime.Add(time.Duration(rec.LeaseDurationSeconds) * time.Second); time.Now().After(expiry) {
		return fmt.Errorf("holder %s let its lease expire at %s", rec.HolderIdentity, expiry.Format(time.RFC3339Nano))
	}
	pod, err := t.cs.CoreV1().Pods(t.ns).Get(ctx, holderPod(rec.HolderIdentity), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("holder %s: %w", rec.HolderIdentity, err)
	}
	if !podReady(pod) {
		return fmt.Errorf("holder %s: pod %s is not ready", rec.HolderIdentity, pod.Name)
	}
	return nil
}

func (t *Target) controllersReady(ctx context.Context) error {
	dep, err := t.cs.AppsV1().Deployments(t.ns).Get(ctx, t.ctrlDeploy, metav1.GetOptions{})
	if err != nil {
		return err
	}
	pods, err := t.pods(ctx, t.ctrlSel)
	if err != nil {
		return err
	}
	ready := 0
	var not []string
	for _, p := range pods {
		if podReady(&p) {
			ready++
		} else if p.DeletionTimestamp == nil {
			not = append(not, p.Name)
		}
	}
	if want := int(ptrOr(dep.Spec.Replicas, 1)); ready < want {
		return fmt.Errorf("%d of %d controller pods ready (not ready: %v)", ready, want, not)
	}
	return nil
}

// auditEntry is one row of kongsim's GET /_kongsim/audit.
type auditEntry struct {
	Time   time.Time `json:"time"`
	Writer string    `json:"writer"`
	Epoch  int64     `json:"epoch"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
}

func (t *Target) singleWriter(ctx context.Context) error {
	if !t.kongsim {
		return engine.Skipped("real Kong keeps no write audit (kongsim's GET /_kongsim/audit)")
	}
	if t.ports.admin == 0 {
		return engine.Skipped("the Admin API listens only inside the pod: each sidecar controller writes its own Kong alone")
	}
	pods, err := t.pods(ctx, t.kongSel)
	if err != nil {
		return err
	}
	var audits [][]auditEntry
	for _, p := range pods {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		var a []auditEntry
		if err := t.getJSON(ctx, "http://"+hostPort(p.Status.PodIP, t.ports.admin)+"/_kongsim/audit", &a); err != nil {
			return fmt.Errorf("audit of Kong %s: %w", p.Name, err)
		}
		audits = append(audits, a)
	}
	if vs := writerViolations(audits); len(vs) > 0 {
		return fmt.Errorf("%d single-writer violations, first: %s", len(vs), vs[0])
	}
	return nil
}

// writerViolations checks the single-writer property over the audits of
// every Kong node: one identity per epoch, no node accepting an epoch
// lower than one it accepted before, and no write of an older epoch after
// a newer epoch wrote anywhere. Writes without a writer (hand edits) are
// not the controller's and are ignored.
func writerViolations(audits [][]auditEntry) []string {
	type row struct {
		auditEntry
		node int
	}
	var rows []row
	var vs []string
	for n, a := range audits {
		var last int64
		for _, e := range a {
			if e.Writer == "" {
				continue
			}
			if e.Epoch < last {
				vs = append(vs, fmt.Sprintf("node %d: epoch went backwards %d → %d (%s at %s)", n, last, e.Epoch, e.Writer, e.Time.Format(time.RFC3339Nano)))
			}
			last = max(last, e.Epoch)
			rows = append(rows, row{e, n})
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return a.Time.Compare(b.Time) })
	writerOf := map[int64]string{}
	var newest int64
	var newestAt time.Time
	for _, r := range rows {
		if w, ok := writerOf[r.Epoch]; ok && w != r.Writer {
			vs = append(vs, fmt.Sprintf("epoch %d has two identities: %s and %s", r.Epoch, w, r.Writer))
		}
		writerOf[r.Epoch] = r.Writer
		if r.Epoch < newest && !r.Time.Before(newestAt) {
			vs = append(vs, fmt.Sprintf("writes interleave: %s (epoch %d) wrote node %d at %s, after epoch %d wrote at %s",
				r.Writer, r.Epoch, r.node, r.Time.Format(time.RFC3339Nano), newest, newestAt.Format(time.RFC3339Nano)))
		}
		if r.Epoch > newest {
			newest, newestAt = r.Epoch, r.Time
		}
	}
	return vs
}

// Traffic sends open-loop GET requests at p.Rate through the proxy with
// vegeta: each goes to the next endpoint of the rotation (or to ProxyURL),
// and each is journaled with its endpoint, status and latency. The
// rotation follows a watch on the proxy Service's EndpointSlices, so an
// endpoint leaves it as soon as the API server says it is not ready; its
// changes are journaled too. With p.RetryConnectFailures a request whose
// connection could not be made is retried once on another endpoint, and
// journaled with the endpoint and error it was retried after.
func (t *Target) Traffic(ctx context.Context, p drill.Probe, j *journal.Writer) error {
	path := p.Path
	if path == "" {
		path = "/"
	}
	timeout := p.Timeout.Or(2 * time.Second)
	rot := newRotation(j, "proxy")
	if t.o.ProxyURL != "" {
		u, err := url.Parse(t.o.ProxyURL)
		if err != nil {
			return err
		}
		rot.eps.Store(&[]string{u.Host})
	} else {
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		if err := rot.watch(watchCtx, t.cs, t.ns, ProxyService, 30*time.Second); err != nil {
			return err
		}
	}
	var next atomic.Uint64
	targeter := func(tgt *vegeta.Target) error {
		eps := rot.endpoints()
		ep := eps[next.Add(1)%uint64(len(eps))]
		tgt.Method, tgt.URL, tgt.Header = "GET", "http://"+ep+path, http.Header{"Host": []string{EchoHost}}
		return nil
	}
	client, retrier := trafficClient(rot, timeout, p.RetryConnectFailures)
	atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.MaxBody(4096))
	results := atk.Attack(targeter, vegeta.Rate{Freq: p.Rate, Per: time.Second}, 0, p.Label())
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			atk.Stop()
		case <-stopped:
		}
	}()
	defer close(stopped)
	for r := range results {
		rec := journal.Record{T: r.Timestamp, Kind: journal.KindRequest, Status: int(r.Code),
			LatencyMS: float64(r.Latency.Microseconds()) / 1000, Subject: hostOf(r.URL)}
		if rt, ok := retrier.take(r.Seq); ok {
			rec.Subject, rec.RetriedFrom, rec.RetryError = rt.to, rt.from, rt.err
		}
		switch {
		case r.Code == 0:
			rec.ErrClass, rec.Detail = journal.ErrTransport, r.Error
		case r.Code/100 != 2:
			rec.ErrClass, rec.Detail = journal.ErrNon2xx, strings.TrimSpace(string(r.Body))
		}
		j.Add(rec)
	}
	return nil
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return raw
}

// observeHashes journals changes of each Kong's configuration hash since
// the last call ("" once its pod is gone).
func (t *Target) observeHashes(ctx context.Context, j *journal.Writer, pods []*corev1.Pod, hashes map[string]string) {
	seen := map[string]bool{}
	for _, p := range pods {
		seen[p.Name] = true
		if t.dbless && t.ports.status != 0 && t.kongSel.Matches(labels.Set(p.Labels)) && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			hash := t.configHash(ctx, p.Status.PodIP)
			if old, ok := hashes[p.Name]; !ok || old != hash {
				hashes[p.Name] = hash
				j.Add(journal.Record{Kind: journal.KindEvent, Event: journal.EventConfigHash, Subject: p.Name, Value: hash})
			}
		}
	}
	for name := range hashes {
		if !seen[name] {
			delete(hashes, name)
			j.Add(journal.Record{Kind: journal.KindEvent, Event: journal.EventConfigHash, Subject: name, Value: ""})
		}
	}
}
