package apiserver

import (
	"reflect"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	fakecoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1/fake"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	fakecorev1 "k8s.io/client-go/kubernetes/typed/core/v1/fake"
	discoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1"
	fakediscoveryv1 "k8s.io/client-go/kubernetes/typed/discovery/v1/fake"
	eventsv1 "k8s.io/client-go/kubernetes/typed/events/v1"
	fakeeventsv1 "k8s.io/client-go/kubernetes/typed/events/v1/fake"
	networkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"
	fakenetworkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1/fake"
	k8stesting "k8s.io/client-go/testing"
)

// View is one client's kubernetes.Interface onto the server. The API groups
// konductor uses (core, networking, discovery, coordination, events) are
// served by the shared store; the other groups fall through to an empty
// fake clientset.
type View struct {
	*fake.Clientset
	s    *Server
	name string
}

var _ kubernetes.Interface = (*View)(nil)

// Client returns the view of the client called name (e.g. a controller
// replica); faults set for that name hit this view only.
func (s *Server) Client(name string) *View {
	return &View{Clientset: fake.NewClientset(), s: s, name: name}
}

// Name is the client's name.
func (v *View) Name() string { return v.name }

// fresh returns a testing.Fake that serves one call through the server; a
// new one per call, so that calls never wait on one another's lock.
func (v *View) fresh() *k8stesting.Fake {
	f := &k8stesting.Fake{}
	f.AddReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		handled, obj, err := v.s.react(v.name, a)
		if err == nil && v.s.OnWrite != nil {
			switch a.GetVerb() {
			case "create", "update", "patch", "delete":
				v.s.OnWrite(v.name, v.s.lastChange())
			}
		}
		return handled, obj, err
	})
	f.AddWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		return v.s.watch(v.name, a.(k8stesting.WatchAction))
	})
	return f
}

// CoreV1 implements kubernetes.Interface.
func (v *View) CoreV1() corev1.CoreV1Interface { return &fakecorev1.FakeCoreV1{Fake: v.fresh()} }

// NetworkingV1 implements kubernetes.Interface.
func (v *View) NetworkingV1() networkingv1.NetworkingV1Interface {
	return &fakenetworkingv1.FakeNetworkingV1{Fake: v.fresh()}
}

// DiscoveryV1 implements kubernetes.Interface.
func (v *View) DiscoveryV1() discoveryv1.DiscoveryV1Interface {
	return &fakediscoveryv1.FakeDiscoveryV1{Fake: v.fresh()}
}

// CoordinationV1 implements kubernetes.Interface.
func (v *View) CoordinationV1() coordinationv1.CoordinationV1Interface {
	return &fakecoordinationv1.FakeCoordinationV1{Fake: v.fresh()}
}

// EventsV1 implements kubernetes.Interface.
func (v *View) EventsV1() eventsv1.EventsV1Interface {
	return &fakeeventsv1.FakeEventsV1{Fake: v.fresh()}
}

// IsWatchListSemanticsUnSupported tells reflectors to list then watch.
func (v *View) IsWatchListSemanticsUnSupported() bool { return true }

func fakeScheme() *runtime.Scheme { return scheme.Scheme }

func reflectName(o runtime.Object) string {
	if o == nil {
		return "<nil>"
	}
	return reflect.TypeOf(o).String()
}
