package kongsync

import (
	"testing"
	"time"

	"konductor.dev/controller/testsupport/bubble"
)

// A writer whose term lapsed (the gate still names it, but the term's
// ValidUntil has passed: the renewal has not arrived) sends nothing and
// reports nothing wrong with Kong: an ended term says nothing about the
// replica's health. It pushes as soon as a valid term is granted again.
func TestLapsedTermSendsNothing(t *testing.T) {
	bubble.Test(t, func(t *testing.T) {
		r := newRig(t, []string{"kong-a"}, nil)
		defer r.shutdown()
		d1 := r.setDesired(desired(1, ""))
		r.requireConfig("kong-a", d1)

		lapsed := ourTerm(time.Now().Add(-time.Second))
		r.gate.set(lapsed, true)
		d2 := desired(2, "")
		r.s.SetDesired(d2)
		advance(5 * time.Second)
		if p := postsOf(r.kongs["kong-a"], d2); len(p) != 0 {
			t.Fatalf("%d pushes under a lapsed term, want none", len(p))
		}
		if st := r.status("kong-a"); !st.Healthy || st.LastError != "" {
			t.Errorf("status under a lapsed term = %+v, want healthy with no error", st)
		}
		r.gate.set(ourTerm(time.Now().Add(10*time.Second)), true)
		advance(time.Second)
		r.requireConfig("kong-a", d2)
	})
}
