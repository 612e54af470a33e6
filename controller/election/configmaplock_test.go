package election

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/controller/fence"
	"konductor.dev/controller/testsupport/bubble"
)

func newConfigMapLock(s *apiServer, id string) *ConfigMapLock {
	return &ConfigMapLock{
		ConfigMapMeta: metav1.ObjectMeta{Namespace: "kong", Name: LockName("", "")},
		Client:        s.client(id).CoreV1(),
		LockConfig:    rl.ResourceLockConfig{Identity: id},
	}
}

func TestConfigMapLockRoundTripsTheRecord(t *testing.T) {
	ctx := context.Background()
	s := newAPIServer()
	a, b := newConfigMapLock(s, "a"), newConfigMapLock(s, "b")

	if _, _, err := a.Get(ctx); !apierrors.IsNotFound(err) {
		t.Fatalf("Get before create: err = %v, want NotFound", err)
	}
	if err := a.Update(ctx, rl.LeaderElectionRecord{}); err == nil {
		t.Fatal("Update before Get/Create succeeded, want an error")
	}
	at := metav1.NewTime(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	want := rl.LeaderElectionRecord{HolderIdentity: "a", LeaseDurationSeconds: 15, AcquireTime: at, RenewTime: at, LeaderTransitions: 3}
	if err := a.Create(ctx, want); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := b.Create(ctx, want); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second Create: err = %v, want AlreadyExists", err)
	}

	got, raw, err := b.Get(ctx)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !recordsEqual(*got, want) {
		t.Fatalf("Get = %+v, want %+v", *got, want)
	}
	cm, _ := s.client("test").CoreV1().ConfigMaps("kong").Get(ctx, LockName("", ""), metav1.GetOptions{})
	if ann := cm.Annotations["control-plane.alpha.kubernetes.io/leader"]; ann != string(raw) {
		t.Fatalf("annotation = %q, raw = %q; want equal", ann, raw)
	}

	// b read the current version and wins; a's cached version is now stale.
	renewed := want
	renewed.HolderIdentity, renewed.LeaderTransitions = "b", 4
	if err := b.Update(ctx, renewed); err != nil {
		t.Fatalf("Update from a fresh read: %v", err)
	}
	if err := a.Update(ctx, want); !apierrors.IsConflict(err) {
		t.Fatalf("Update from a stale read: err = %v, want Conflict", err)
	}
	got, _, err = a.Get(ctx)
	if err != nil || !recordsEqual(*got, renewed) {
		t.Fatalf("Get after update = %+v, %v; want %+v", got, err, renewed)
	}
	if a.Describe() != "kong/ingress-controller-leader-kong" || a.Identity() != "a" {
		t.Fatalf("Describe/Identity = %q/%q", a.Describe(), a.Identity())
	}
}

func recordsEqual(a, b rl.LeaderElectionRecord) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestRecordFromConfigMap(t *testing.T) {
	valid, _ := json.Marshal(rl.LeaderElectionRecord{HolderIdentity: "x", LeaseDurationSeconds: 15, LeaderTransitions: 2})
	tests := []struct {
		name       string
		ann        map[string]string
		wantHolder string
		wantRaw    string
		wantErr    string
	}{
		{name: "no annotation is an empty record", ann: nil},
		{name: "other annotations only", ann: map[string]string{"a": "b"}},
		{name: "valid record", ann: map[string]string{rl.LeaderElectionRecordAnnotationKey: string(valid)}, wantHolder: "x", wantRaw: string(valid)},
		{name: "corrupt record", ann: map[string]string{rl.LeaderElectionRecordAnnotationKey: "{not json"}, wantErr: "configmap kong/lock: annotation control-plane.alpha.kubernetes.io/leader: invalid leader election record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kong", Name: "lock", Annotations: tc.ann}}
			rec, raw, err := RecordFromConfigMap(cm)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || rec.HolderIdentity != tc.wantHolder || string(raw) != tc.wantRaw {
				t.Fatalf("= %+v, %q, %v; want holder %q raw %q", rec, raw, err, tc.wantHolder, tc.wantRaw)
			}
		})
	}
}

// client-go's own LeaderElector drives our ConfigMapLock, and our Elector
// takes over the instant client-go's ReleaseOnCancel releases it.
func TestClientGoLeaderElectorDrivesConfigMapLock(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		s := newAPIServer()
		const lease, renew, retry = 15 * time.Second, 10 * time.Second, 2 * time.Second

		goCtx, stopClientGo := context.WithCancel(t.Context())
		started := make(chan struct{})
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            newConfigMapLock(s, "client-go"),
			LeaseDuration:   lease,
			RenewDeadline:   renew,
			RetryPeriod:     retry,
			ReleaseOnCancel: true,
			Name:            "interop",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { close(started) },
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		goDone := make(chan struct{})
		go func() { le.Run(goCtx); close(goDone) }()
		<-started

		won := make(chan fence.Term, 1)
		e, err := New(Config{
			Client: s.client("ours"), Namespace: "kong", Name: LockName("", ""), Identity: "ours",
			LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
			OnNewTerm: func(term fence.Term) { won <- term },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		runDone := make(chan error)
		go func() { runDone <- e.Run(ctx) }()

		// Hold for several lease durations: client-go renews, we stand by.
		time.Sleep(3 * lease)
		if e.IsLeader() || e.Leader() != "client-go" {
			t.Fatalf("while client-go leads: IsLeader=%v Leader=%q", e.IsLeader(), e.Leader())
		}
		stopClientGo()
		<-goDone
		released := time.Now()
		term := <-won
		if took := time.Since(released); took > 0 {
			t.Errorf("took over %v after client-go released; want at once", took)
		}
		// client-go creates the lock with transition count 0; we are next.
		if term.Epoch != 1 || term.Identity != "ours" {
			t.Errorf("term = %+v, want ours with epoch 1", term)
		}
		stop()
		if err := <-runDone; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}
