package world

import (
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"

	"konductor.dev/sim/apiserver"
)

// The evidence-takeover oracle must flag a takeover before the holder's
// lease ran out while the holder's process still ran, and nothing else.
func TestEvidenceOracleFlagsOnlyEarlyTakeoversFromLiveHolders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		after    time.Duration // from the holder's last renewal to the takeover
		diedAt   time.Duration // from the last renewal; <0: never died
		released bool
		want     bool
	}{
		{"after the lease, holder alive", 15 * time.Second, -1, false, false},
		{"early, holder dead before", 1500 * time.Millisecond, time.Second, false, false},
		{"early, holder alive", 1500 * time.Millisecond, -1, false, true},
		{"early, holder died after the takeover", 1500 * time.Millisecond, 2 * time.Second, false, true},
		{"released, holder alive", 100 * time.Millisecond, -1, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &World{api: apiserver.New(1), opts: defaultOptions(), start: time.Now(), deaths: deathLog{}}
				w.endAt = w.start.Add(time.Hour)
				put := func(holder string, epoch int) {
					now := metav1.NewTime(time.Now())
					raw, _ := json.Marshal(rl.LeaderElectionRecord{HolderIdentity: holder, LeaderTransitions: epoch, LeaseDurationSeconds: 15, AcquireTime: now, RenewTime: now})
					cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: kongNamespace, Name: lockName(),
						Annotations: map[string]string{rl.LeaderElectionRecordAnnotationKey: string(raw)}}}
					if err := w.api.Apply(cm); err != nil {
						t.Fatal(err)
					}
				}
				put("a", 1)
				time.Sleep(2 * time.Second)
				put("a", 1) // a renewal
				renewed := time.Now()
				if tc.released {
					time.Sleep(tc.after / 2)
					put("", 1)
				}
				if tc.diedAt >= 0 {
					w.deaths["a"] = renewed.Add(tc.diedAt)
				}
				time.Sleep(time.Until(renewed.Add(tc.after)))
				put("b", 2)
				w.checkEvidenceTakeovers()
				if got := len(w.violations) > 0; got != tc.want {
					t.Errorf("violations %v, want flagged = %v", w.violations, tc.want)
				}
			})
		})
	}
}
