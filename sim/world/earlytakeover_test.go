package world

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/sim/apiserver"
)

// lockHistory writes lock records as the named clients and reports on
// Pods, for the no-early-takeover oracle's cases.
type lockHistory struct {
	t *testing.T
	w *World
}

func (h lockHistory) put(client, holder string, epoch int) {
	h.t.Helper()
	now := metav1.NewTime(time.Now())
	raw, _ := json.Marshal(rl.LeaderElectionRecord{HolderIdentity: holder, LeaderTransitions: epoch, LeaseDurationSeconds: 15, AcquireTime: now, RenewTime: now})
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: lockName(),
		Annotations: map[string]string{rl.LeaderElectionRecordAnnotationKey: string(raw)}}}
	cms := h.w.api.Client(client).CoreV1().ConfigMaps(kongNamespace)
	var err error
	if _, found := h.w.api.Get(configMaps, kongNamespace, lockName()); found {
		_, err = cms.Update(context.Background(), cm, metav1.UpdateOptions{})
	} else {
		_, err = cms.Create(context.Background(), cm, metav1.CreateOptions{})
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

// reportTerminated is the kubelet reporting identity's container ended.
func (h lockHistory) reportTerminated(identity string) {
	h.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: "konductor-0"},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: controllerContainer, ContainerID: "sim://" + identity,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, ContainerID: "sim://" + identity}},
		}}},
	}
	if err := h.w.api.Apply(pod); err != nil {
		h.t.Fatal(err)
	}
}

// The no-early-takeover oracle flags a term that starts before the
// previous holder's lease could run out without a kubelet report of its
// process terminated, a release by anyone but the holder, and a term that
// ends while one of its Kong writes is still under way; and nothing else.
func TestNoEarlyTakeoverOracle(t *testing.T) {
	const lease = 15 * time.Second
	for _, tc := range []struct {
		name string
		// after is the takeover's distance from the holder's last renewal.
		after time.Duration
		// reportAt is when the kubelet reports the holder terminated,
		// from the renewal; <0: never.
		reportAt time.Duration
		// releasedBy, if set, releases the lock before the takeover.
		releasedBy string
		// write is a Kong write of the holder's term from the renewal
		// until writeEnd (0: none), which never reaches Kong; died kills
		// its process then (<0: alive).
		writeEnd, died time.Duration
		// reaches: the write reaches Kong at writeEnd.
		reaches bool
		want    string // substring of the violation; "": none
	}{
		{name: "after the lease", after: lease, reportAt: -1, died: -1},
		{name: "early, no report", after: lease / 2, reportAt: -1, died: -1, want: "before a's lease could have run out"},
		{name: "early, reported before", after: 2 * time.Second, reportAt: time.Second, died: -1},
		{name: "early, reported after the takeover", after: 2 * time.Second, reportAt: 3 * time.Second, died: -1, want: "no report"},
		{name: "released by the holder", after: time.Second, reportAt: -1, releasedBy: "a", died: -1},
		{name: "released by another", after: time.Second, reportAt: -1, releasedBy: "b", died: -1, want: "b released the lock held by a"},
		{name: "write over before the release", after: 4 * time.Second, reportAt: -1, releasedBy: "a", writeEnd: time.Second, died: -1},
		{name: "write under way at the release", after: 4 * time.Second, reportAt: -1, releasedBy: "a", writeEnd: 3 * time.Second, died: -1, want: "still under way"},
		{name: "write under way at the takeover", after: lease, reportAt: -1, writeEnd: lease + time.Second, died: -1, want: "still under way"},
		{name: "write of a process that died", after: 2 * time.Second, reportAt: time.Second, writeEnd: lease, died: 500 * time.Millisecond},
		{name: "write reaching Kong after the release", after: 4 * time.Second, reportAt: -1, releasedBy: "a", writeEnd: 3 * time.Second, reaches: true, died: -1, want: "still under way"},
		{name: "write reaching Kong before the release", after: 4 * time.Second, reportAt: -1, releasedBy: "a", writeEnd: time.Second, reaches: true, died: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &World{api: apiserver.New(1), opts: defaultOptions(), start: time.Now(), deaths: deathLog{}, killed: map[string]time.Time{}}
				w.endAt = w.start.Add(time.Hour)
				h := lockHistory{t, w}
				h.put("a", "a", 1)
				time.Sleep(2 * time.Second)
				h.put("a", "a", 1) // a renewal
				renewed := time.Now()
				if tc.writeEnd > 0 {
					a := &attempt{start: renewed, end: renewed.Add(tc.writeEnd), writer: "a", write: true, epoch: 1, route: "POST /config"}
					if tc.reaches {
						a.reached = a.end
					}
					w.attempts = append(w.attempts, a)
				}
				if tc.died >= 0 {
					w.killed["a"] = renewed.Add(tc.died)
				}
				if tc.reportAt >= 0 && tc.reportAt < tc.after {
					time.Sleep(tc.reportAt)
					h.reportTerminated("a")
				}
				if tc.releasedBy != "" {
					time.Sleep(time.Until(renewed.Add(tc.after / 2)))
					h.put(tc.releasedBy, "", 1)
				}
				time.Sleep(time.Until(renewed.Add(tc.after)))
				h.put("b", "b", 2)
				if tc.reportAt >= tc.after {
					time.Sleep(time.Until(renewed.Add(tc.reportAt)))
					h.reportTerminated("a")
				}
				w.checkNoEarlyTakeover()
				var got []string
				for _, v := range w.violations {
					got = append(got, v.String())
				}
				switch {
				case tc.want == "" && len(got) > 0:
					t.Errorf("violations %v, want none", got)
				case tc.want != "" && !strings.Contains(strings.Join(got, "\n"), tc.want):
					t.Errorf("violations %v, want one containing %q", got, tc.want)
				}
			})
		})
	}
}

// The backoff bound: lo, 2lo, 4lo, … capped at hi, each retry counted
// once its whole delay fits.
func TestRetriesWithin(t *testing.T) {
	const lo, hi = 250 * time.Millisecond, 30 * time.Second
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{249 * time.Millisecond, 0},
		{250 * time.Millisecond, 1},
		{750 * time.Millisecond, 2},            // 250 + 500
		{31750 * time.Millisecond, 7},          // 250 … 16s
		{61750 * time.Millisecond, 8},          // then 30s (capped)
		{61750*time.Millisecond - 1, 7},        // not quite
		{10 * time.Minute, 7 + 18},             // 31.75s, then 568.25s / 30s
		{2 * time.Second, 3},                   // 250 + 500 + 1000
		{2*lo + lo/2, 1},                       // 625ms: 250, and 500 more does not fit
		{hi, 6},                                // 15.75s after 6; 16s more does not fit
		{hi + 16*time.Second, 7},               // 31.75s
		{time.Hour, 7 + (3600000-31750)/30000}, // the cap from then on
	} {
		if got := retriesWithin(tc.d, lo, hi); got != tc.want {
			t.Errorf("retriesWithin(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
	if got := writeBudget(0, lo, hi); got != 2 {
		t.Errorf("writeBudget(0) = %d, want 2: the trigger's write and an earlier trigger's", got)
	}
}
