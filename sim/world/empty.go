package world

import (
	"net/http"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var ingresses = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}

// OracleEmptyRefused: in database mode, an empty desired configuration
// (every Ingress deleted) deletes nothing: without AllowEmpty the pusher
// refuses to wipe the database, which an empty cache, a broken informer or
// a mistaken bulk delete would otherwise do. No Kong accepts a DELETE
// while the Ingresses are gone.
const OracleEmptyRefused = "empty-refused"

// editApp gives app 0's Ingress a second rule, for another host, keeping
// its status: a spec change, which the API server counts as a new
// generation.
func (w *World) editApp() {
	obj, ok := w.api.Get(ingresses, appNamespace, appName(0))
	if !ok {
		w.violate("world", "editing Ingress %s: not found", appName(0))
		return
	}
	ing := obj.(*networkingv1.Ingress).DeepCopy()
	alias := ing.Spec.Rules[0].DeepCopy()
	alias.Host = "alias-" + appHost(0)
	ing.Spec.Rules = append(ing.Spec.Rules, *alias)
	ing.ResourceVersion = ""
	if err := w.api.Apply(ing); err != nil {
		w.violate("world", "editing Ingress %s: %v", appName(0), err)
	}
}

// removeApps deletes every app's Ingress; the heal creates them again.
func (w *World) removeApps() (heal func()) {
	w.mu.Lock()
	n := w.apps
	w.mu.Unlock()
	for i := range n {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: appNamespace, Name: appName(i)}}
		if err := w.api.Delete(ing); err != nil {
			w.violate("world", "deleting Ingress %s: %v", appName(i), err)
		}
	}
	began := time.Now()
	return func() {
		for i := range n {
			if err := w.api.Apply(appObjects(i)[2]); err != nil {
				w.violate("world", "creating Ingress %s again: %v", appName(i), err)
			}
		}
		w.mu.Lock()
		w.emptied = append(w.emptied, [2]time.Time{began, time.Now()})
		w.mu.Unlock()
	}
}

func (w *World) checkEmptyRefused() {
	w.mu.Lock()
	windows := append([][2]time.Time(nil), w.emptied...)
	w.mu.Unlock()
	if len(windows) == 0 {
		return
	}
	for _, a := range w.allAudits() {
		if a.Method != http.MethodDelete {
			continue
		}
		for _, win := range windows {
			if !a.Time.Before(win[0]) && !a.Time.After(win[1]) {
				w.violateAt(OracleEmptyRefused, a.Time, "%s accepted DELETE %s from %s while every Ingress was deleted (%v to %v): an empty desired state must not wipe the database",
					kongPod(a.slot), a.Path, a.Writer, win[0].Sub(w.start), win[1].Sub(w.start))
				break
			}
		}
	}
}
