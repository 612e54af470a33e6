package drill

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const valid = `title: Leader crash under traffic
description: The leader is SIGKILLed; a standby takes over.
target:
  overlay: dbless-gateway-discovery
  components: [kongsim]
  providers: [local]
steady-state-hypothesis:
  title: Kong serves and converges
  probes:
  - name: traffic
    type: http-traffic
    when: continuous
    rate: 100
    tolerance:
      max-non-2xx: 0
      max-transport-errors: 0
  - type: change-propagates
    when: [before, after]
    tolerance:
      within: 10s
  - type: single-leader
    when: [before, after]
method:
- fault: leader-crash
  selector:
    mode: one
  verify-within: 20s
schedule:
  repeat: 3
  interval: 20s
  jitter: 2s
abort:
  max-transport-errors: 100
rollbacks:
- action: restore-replicas
`

func TestParseValid(t *testing.T) {
	d, err := Parse("leader.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if d.Title != "Leader crash under traffic" || d.Target.Overlay != "dbless-gateway-discovery" || d.File != "leader.yaml" {
		t.Errorf("decoded %+v", d)
	}
	pr := d.Hypothesis.Probes[0]
	if pr.RetryConnectFailures {
		t.Error("retry-connect-failures is on without being asked for")
	}
	if pr.Rate != 100 || !pr.Runs(PhaseContinuous) || pr.Tolerance.MaxNon2xx == nil || *pr.Tolerance.MaxNon2xx != 0 {
		t.Errorf("traffic probe %+v", pr)
	}
	if d.Hypothesis.Probes[1].Tolerance.Within.D() != 10*time.Second {
		t.Errorf("within = %s", d.Hypothesis.Probes[1].Tolerance.Within)
	}
	if d.Schedule.Repeats() != 3 || d.Schedule.Interval.D() != 20*time.Second || d.Method[0].Verify.D() != 20*time.Second {
		t.Errorf("schedule %+v method %+v", d.Schedule, d.Method)
	}
	if d.NeedsProvider() != ProviderLocal {
		t.Errorf("NeedsProvider = %q", d.NeedsProvider())
	}
}

// TestParseRefuses: each broken file is refused with the line and field
// path of its problem.
func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           string // "line:col: path: message" fragment
	}{
		{"unknown top-level field", "description:", "descripton:", "leader.yaml:2:1: descripton: unknown field"},
		{"unknown nested field", "      max-non-2xx: 0", "      max-non2xx: 0", "leader.yaml:15:7: steady-state-hypothesis.probes[0].tolerance.max-non2xx: unknown field"},
		{"unknown fault kind", "- fault: leader-crash", "- fault: leader-explode", `leader.yaml:24:10: method[0].fault: unknown fault kind "leader-explode"`},
		{"unknown selector mode", "    mode: one", "    mode: random-max-percent", `leader.yaml:26:11: method[0].selector.mode: unknown selector mode "random-max-percent"`},
		{"unknown probe type", "    type: http-traffic", "    type: http-load", `leader.yaml:11:11: steady-state-hypothesis.probes[0].type: unknown probe type`},
		{"unknown phase", "    when: continuous", "    when: during", `steady-state-hypothesis.probes[0].when[0]: unknown phase "during"`},
		{"bad duration", "  interval: 20s", "  interval: twenty", `leader.yaml:30:13: schedule.interval: "twenty" is not a non-negative duration`},
		{"int as string", "  repeat: 3", "  repeat: three", `schedule.repeat: want an integer`},
		{"unknown overlay", "  overlay: dbless-gateway-discovery", "  overlay: dbfull", `leader.yaml:4:12: target.overlay: unknown overlay "dbfull"`},
		{"unknown component", "  components: [kongsim]", "  components: [kongsim, istio]", `leader.yaml:5:25: target.components[1]: unknown component "istio"`},
		{"duplicate field", "  jitter: 2s", "  jitter: 2s\n  jitter: 1s", `schedule.jitter: field given twice`},
		{"jitter over interval", "  jitter: 2s", "  jitter: 30s", `leader.yaml:31:11: schedule.jitter: must be less than schedule.interval`},
		{"rate too high", "    rate: 100", "    rate: 100000", `steady-state-hypothesis.probes[0].rate: must be between 1 and 2000`},
		{"traffic not continuous", "    when: continuous", "    when: after", `probes[0].when: http-traffic runs only "continuous"`},
		{"fixed without value", "    mode: one", "    mode: fixed", `method[0].selector.value: mode fixed needs a value of at least 1`},
		{"leader mode all", "    mode: one", "    mode: all", `method[0].selector.mode: there is one leader`},
		{"propagation without within", "      within: 10s", "      max-violations: 0", `probes[1].tolerance.within: is required`},
		{"local fault on kind only", "  providers: [local]", "  providers: [kind]", `target.providers: the method has a fault that signals processes, which needs provider "local"`},
		{"unknown provider", "  providers: [local]", "  providers: [eks]", `target.providers[0]: unknown provider "eks"`},
		{"anchor", "  repeat: 3", "  repeat: &r 3", `schedule.repeat: YAML anchors and aliases are not supported`},
		{"list for scalar", "  repeat: 3", "  repeat: [3]", `schedule.repeat: want a single value, not a list`},
		{"too long", "  interval: 20s", "  interval: 20m", `abort.max-duration: the schedule needs about 1h0m6s`},
		{"rollback unknown", "- action: restore-replicas", "- action: reboot", `rollbacks[0].action: unknown rollback action "reboot"`},
		{"retry on a check", "  - type: single-leader\n", "  - type: single-leader\n    retry-connect-failures: true\n", `probes[2].retry-connect-failures: applies only to http-traffic`},
		{"no method", "method:\n- fault: leader-crash\n  selector:\n    mode: one\n  verify-within: 20s\n", "method: []\n", `method: is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(valid, tc.from) {
				t.Fatalf("test case edits %q, which the valid drill lacks", tc.from)
			}
			_, err := Parse("leader.yaml", []byte(strings.Replace(valid, tc.from, tc.to, 1)))
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Errorf("error %T is no *drill.Error", err)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	src := strings.Replace(strings.Replace(valid, "descr", "xdescr", 1), "mode: one", "mode: most", 1)
	_, err := Parse("f.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "xdescription") || !strings.Contains(err.Error(), `"most"`) {
		t.Fatalf("want both errors, got %v", err)
	}
}

func TestSelectorCount(t *testing.T) {
	for _, tc := range []struct {
		s    Selector
		n    int
		want int
	}{
		{Selector{}, 3, 1}, {Selector{Mode: ModeOne}, 3, 1}, {Selector{Mode: ModeAll}, 3, 3},
		{Selector{Mode: ModeFixed, Value: 2}, 3, 2}, {Selector{Mode: ModeFixed, Value: 5}, 3, 3},
		{Selector{Mode: ModeFixedPercent, Value: 50}, 4, 2}, {Selector{Mode: ModeFixedPercent, Value: 10}, 3, 1},
		{Selector{Mode: ModeAll}, 0, 0},
	} {
		if got := tc.s.Count(tc.n); got != tc.want {
			t.Errorf("%+v.Count(%d) = %d, want %d", tc.s, tc.n, got, tc.want)
		}
	}
}

// TestShippedDrills parses every drill in chaos/drills.
func TestShippedDrills(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	drills, err := ParseDir(filepath.Join(filepath.Dir(self), "..", "drills"))
	if err != nil {
		t.Fatal(err)
	}
	if len(drills) < 12 {
		t.Errorf("%d drills in chaos/drills, want at least 12", len(drills))
	}
	overlays := map[string]int{}
	for _, d := range drills {
		overlays[d.Target.Overlay]++
	}
	for _, o := range Overlays {
		if overlays[o] == 0 {
			t.Errorf("no drill for overlay %s", o)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("title: x\nmethod: [{fault: kong-restart, selector: {mode: fixed-percent, value: 50}}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("- - -\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := Parse("fuzz.yaml", raw)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %T is no *drill.Error: %v", err, err)
			}
			if d != nil {
				t.Fatal("a drill returned with an error")
			}
			return
		}
		// Whatever is accepted honours the invariants the engine relies on.
		if d.Title == "" || len(d.Method) == 0 || len(d.Hypothesis.Probes) == 0 {
			t.Fatalf("accepted an incomplete drill: %+v", d)
		}
		for _, a := range d.Method {
			if a.Selector.Count(10) < 1 {
				t.Fatalf("selector %+v picks nothing of 10", a.Selector)
			}
		}
		rate := 0
		for _, p := range d.Hypothesis.Probes {
			rate += p.Rate
		}
		if float64(rate)*d.Abort.MaxDuration.Or(DefaultTimeout).Seconds() > MaxRequests {
			t.Fatalf("accepted unbounded load: %d/s", rate)
		}
	})
}
