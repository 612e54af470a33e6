package kube

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"konductor.dev/chaos/drill"
)

func deployDir(t *testing.T) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "deploy")
}

// TestLearnOverlays: the target finds Kong, the controllers, their ports
// and the election lock in every overlay.
func TestLearnOverlays(t *testing.T) {
	for _, tc := range []struct {
		overlay          string
		kong, ctrl, lock string
		admin            int32
		dbless           bool
	}{
		{"dbless-sidecar", "kong", "kong", "", 0, true},
		{"dbless-gateway-discovery", "kong", "konductor", "ingress-controller-leader-kong", 8001, true},
		{"postgres", "kong", "konductor", "ingress-controller-leader-kong", 8001, false},
	} {
		t.Run(tc.overlay, func(t *testing.T) {
			objs, err := Render(deployDir(t), tc.overlay, []string{"kongsim"}, []map[string]any{replicasPatch("kong", 3)})
			if err != nil {
				t.Fatal(err)
			}
			tg := &Target{ns: "kong", d: &drill.Drill{Target: drill.Target{Overlay: tc.overlay}}}
			if err := tg.learn(objs); err != nil {
				t.Fatal(err)
			}
			if tg.kongDeploy != tc.kong || tg.ctrlDeploy != tc.ctrl || tg.lock != tc.lock || tg.ports.admin != tc.admin ||
				tg.dbless != tc.dbless || !tg.kongsim || tg.ports.proxy != 8000 || tg.ports.status != 8100 {
				t.Errorf("learned kong=%s ctrl=%s lock=%q ports=%+v dbless=%v kongsim=%v", tg.kongDeploy, tg.ctrlDeploy, tg.lock, tg.ports, tg.dbless, tg.kongsim)
			}
			for _, o := range objs {
				if o.GetKind() == "Deployment" && o.GetName() == "kong" {
					if r, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas"); fmt.Sprint(r) != "3" {
						t.Errorf("kong replicas %v after the patch, want 3", r)
					}
				}
			}
		})
	}
}

func TestWriterViolations(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := func(s int, writer string, epoch int64) auditEntry {
		return auditEntry{Time: t0.Add(time.Duration(s) * time.Second), Writer: writer, Epoch: epoch}
	}
	for _, tc := range []struct {
		name   string
		audits [][]auditEntry
		want   string
	}{
		{"one term", [][]auditEntry{{w(1, "a", 1), w(2, "a", 1)}, {w(1, "a", 1)}}, ""},
		{"clean handover", [][]auditEntry{{w(1, "a", 1), w(5, "b", 2)}, {w(2, "a", 1), w(6, "b", 2)}}, ""},
		{"hand edits ignored", [][]auditEntry{{w(1, "a", 1), w(2, "", 0), w(3, "b", 2)}}, ""},
		{"old term after new elsewhere", [][]auditEntry{{w(1, "a", 1), w(5, "b", 2)}, {w(6, "a", 1)}}, "writes interleave"},
		{"same instant", [][]auditEntry{{w(1, "a", 1), w(5, "b", 2)}, {w(5, "a", 1)}}, "writes interleave"},
		{"epoch backwards on a node", [][]auditEntry{{w(1, "a", 2), w(2, "b", 1)}}, "epoch went backwards"},
		{"one epoch, two writers", [][]auditEntry{{w(1, "a", 1)}, {w(2, "b", 1)}}, "two identities"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := writerViolations(tc.audits)
			switch {
			case tc.want == "" && len(vs) > 0:
				t.Errorf("violations %q, want none", vs)
			case tc.want != "" && (len(vs) == 0 || !strings.Contains(strings.Join(vs, "\n"), tc.want)):
				t.Errorf("violations %q, want one about %q", vs, tc.want)
			}
		})
	}
}

func TestElectionLock(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "ingress-controller-leader-kong"},
		{[]string{"--election-id=x", "--ingress-class=internal"}, "x-internal"},
		{[]string{"--leader-elect=false"}, ""},
	} {
		if got := electionLock(tc.args); got != tc.want {
			t.Errorf("electionLock(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestProcessState(t *testing.T) {
	if s := processState(1); s == "" || s == "T" {
		t.Errorf("state of pid 1 = %q", s)
	}
}
