package eventreport

import (
	"strings"
	"testing"

	"k8s.io/client-go/tools/record"

	"konductor.dev/controller/kongsync"
	"konductor.dev/controller/translate"
)

func drain(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

var web = translate.ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web", UID: "u1"}

func TestTranslationErrorsAreDeduplicated(t *testing.T) {
	rec := record.NewFakeRecorder(100)
	r := New(rec, nil)
	missing := translate.ObjectError{Object: web, Field: "spec.rules[0].http.paths[0].backend.service.name", Reason: translate.ReasonServiceNotFound, Message: `Service "nope" not found`}
	badPath := translate.ObjectError{Object: web, Field: "spec.rules[0].http.paths[1].path", Reason: translate.ReasonInvalidPath, Message: "bad"}

	steps := []struct {
		errs []translate.ObjectError
		want int
	}{
		{[]translate.ObjectError{missing}, 1},
		{[]translate.ObjectError{missing}, 0},          // same error again: silent
		{[]translate.ObjectError{missing, badPath}, 1}, // only the new one
		{nil, 0},                              // fixed
		{[]translate.ObjectError{missing}, 1}, // broken again: reported again
	}
	for i, s := range steps {
		if got := r.TranslationErrors(s.errs); got != s.want {
			t.Errorf("step %d: emitted %d, want %d", i, got, s.want)
		}
	}
	events := drain(rec)
	if len(events) != 3 {
		t.Fatalf("events %q", events)
	}
	if want := "Warning ServiceNotFound spec.rules[0].http.paths[0].backend.service.name: Service \"nope\" not found"; events[0] != want {
		t.Errorf("event %q, want %q", events[0], want)
	}
	r.Reset()
	if got := r.TranslationErrors([]translate.ObjectError{missing}); got != 1 {
		t.Errorf("after Reset emitted %d, want 1", got)
	}
}

func TestRejectionsMapBackToObjects(t *testing.T) {
	rec := record.NewFakeRecorder(100)
	r := New(rec, nil)
	rej := kongsync.Rejection{
		EntityType: "route", EntityName: "default.web.0.0",
		Tags:  []string{"k8s-name:web", "k8s-namespace:default", "k8s-kind:Ingress", "k8s-uid:u1", translate.ManagedByTag},
		Field: "paths.1", Message: "invalid regex",
	}
	anonymous := kongsync.Rejection{EntityType: "plugin", Message: "unknown plugin"}
	if got := r.Rejections("h1", []kongsync.Rejection{rej, anonymous}); got != 1 {
		t.Errorf("emitted %d, want 1", got)
	}
	// A second Kong replica rejects the same configuration: no new Event.
	if got := r.Rejections("h1", []kongsync.Rejection{rej}); got != 0 {
		t.Errorf("duplicate emitted %d", got)
	}
	// A new configuration rejected the same way is news.
	if got := r.Rejections("h2", []kongsync.Rejection{rej}); got != 1 {
		t.Errorf("new hash emitted %d", got)
	}
	events := drain(rec)
	if len(events) != 2 || !strings.HasPrefix(events[0], "Warning KongConfigurationRejected Kong rejected route default.web.0.0 field paths.1: invalid regex") {
		t.Errorf("events %q", events)
	}
	if ref := Reference(web); ref.APIVersion != "networking.k8s.io/v1" || ref.UID != "u1" {
		t.Errorf("reference %+v", ref)
	}
}
