// Package apiserver is the simulator's in-process Kubernetes API server: one
// shared object store behind client-go's generated fake clientsets, extended
// with reactors so that it behaves like the real server where controllers
// depend on it, and with faults drawn from a seeded source.
//
// Behaviour kept from the real API server:
//
//   - every write gets the next value of one global revision counter as its
//     resourceVersion; an update or patch naming an older resourceVersion
//     fails with 409 Conflict; a create of an existing name fails with
//     AlreadyExists; generateName gets a suffix;
//   - List answers with the revision it reflects; Watch from a revision
//     replays every later change, and from "" or "0" starts with the current
//     objects as ADDED events; a revision older than the compaction point
//     answers 410 Gone, which makes informers list again;
//   - label selectors, and the field selectors metadata.name and
//     metadata.namespace, filter List and Watch;
//   - the status subresource replaces only .status.
//
// Faults (see Faults) are set per client: each controller replica gets its
// own view (Server.Client) sharing the one store, so a partition or a
// stale read hits one replica only. Every random choice comes from a stream
// derived from the seed and the request's client, verb and resource, so
// concurrent clients do not perturb one another's draws.
//
// The fake's own lock (testing.Fake serialises its reactors) would turn
// injected latency into a global stall, and a goroutine waiting on a mutex
// is not durably blocked under testing/synctest; so every request gets a
// fresh testing.Fake carrying the same reactors.
package apiserver

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
)

// objKey locates one object.
type objKey struct {
	gvr             schema.GroupVersionResource
	namespace, name string
}

// Change is one accepted write, as watchers see it.
type Change struct {
	Revision  int64
	Resource  schema.GroupVersionResource
	Namespace string
	Name      string
	Type      watch.EventType
	// Object is the object after the change (for a deletion: as it was,
	// with the deletion's resourceVersion).
	Object runtime.Object
	// Client is the view that made the change ("" for Server.Seed).
	Client string
	// Time is when the change was accepted (virtual under synctest).
	Time time.Time
}

// store holds the objects and the full change log. It is guarded by
// Server.mu.
type store struct {
	rev       int64
	compacted int64 // watches from a revision below this answer 410
	objects   map[objKey]runtime.Object
	log       []Change
	watchers  map[*watcher]struct{}
	created   map[objKey]int
}

func newStore() *store {
	return &store{objects: map[objKey]runtime.Object{}, watchers: map[*watcher]struct{}{}, created: map[objKey]int{}}
}

// stateAt rebuilds the objects of gvr as they were at revision rev.
func (s *store) stateAt(gvr schema.GroupVersionResource, rev int64) map[objKey]runtime.Object {
	out := map[objKey]runtime.Object{}
	for _, c := range s.log {
		if c.Revision > rev {
			break
		}
		if c.Resource != gvr {
			continue
		}
		k := objKey{gvr, c.Namespace, c.Name}
		if c.Type == watch.Deleted {
			delete(out, k)
		} else {
			out[k] = c.Object
		}
	}
	return out
}

// current returns the live objects of gvr.
func (s *store) current(gvr schema.GroupVersionResource) map[objKey]runtime.Object {
	out := map[objKey]runtime.Object{}
	for k, o := range s.objects {
		if k.gvr == gvr {
			out[k] = o
		}
	}
	return out
}

// filter is a List's or Watch's scope.
type filter struct {
	namespace string
	labels    labels.Selector
	fields    fields.Selector
}

func (f filter) matches(namespace, name string, obj runtime.Object) bool {
	if f.namespace != "" && f.namespace != namespace {
		return false
	}
	if f.fields != nil && !f.fields.Empty() &&
		!f.fields.Matches(fields.Set{"metadata.name": name, "metadata.namespace": namespace}) {
		return false
	}
	if f.labels != nil && !f.labels.Empty() {
		m, err := meta.Accessor(obj)
		if err != nil || !f.labels.Matches(labels.Set(m.GetLabels())) {
			return false
		}
	}
	return true
}

// commit records a change under the lock, stamps the revision and notifies
// matching watchers. obj is already a private copy.
func (s *store) commit(client string, k objKey, typ watch.EventType, obj runtime.Object) runtime.Object {
	s.rev++
	m, _ := meta.Accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(s.rev, 10))
	if typ == watch.Deleted {
		delete(s.objects, k)
	} else {
		s.objects[k] = obj
	}
	c := Change{Revision: s.rev, Resource: k.gvr, Namespace: k.namespace, Name: k.name, Type: typ, Object: obj, Client: client, Time: time.Now()}
	s.log = append(s.log, c)
	for w := range s.watchers {
		if w.gvr == k.gvr && w.filter.matches(k.namespace, k.name, obj) {
			w.send(watch.Event{Type: typ, Object: obj.DeepCopyObject()})
		}
	}
	return obj.DeepCopyObject()
}

// sortedObjects returns the objects in namespace/name order, so that lists
// are deterministic.
func sortedObjects(objs map[objKey]runtime.Object, f filter) []runtime.Object {
	keys := make([]objKey, 0, len(objs))
	for k, o := range objs {
		if f.matches(k.namespace, k.name, o) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].namespace != keys[j].namespace {
			return keys[i].namespace < keys[j].namespace
		}
		return keys[i].name < keys[j].name
	})
	out := make([]runtime.Object, len(keys))
	for i, k := range keys {
		out[i] = objs[k].DeepCopyObject()
	}
	return out
}

// newList builds an empty list object for kind (e.g. "Service" →
// ServiceList) from client-go's scheme.
func newList(gvk schema.GroupVersionKind) (runtime.Object, error) {
	gvk.Kind += "List"
	return scheme.Scheme.New(gvk)
}

// create stores a new object.
func (s *store) create(client string, gvr schema.GroupVersionResource, ns string, obj runtime.Object, suffix func() string) (runtime.Object, error) {
	obj = obj.DeepCopyObject()
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if m.GetNamespace() == "" {
		m.SetNamespace(ns)
	}
	if ns != "" && m.GetNamespace() != ns {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the namespace of the object (%s) does not match the namespace of the request (%s)", m.GetNamespace(), ns))
	}
	if m.GetName() == "" && m.GetGenerateName() != "" {
		m.SetName(m.GetGenerateName() + suffix())
	}
	if m.GetName() == "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: gvr.Group, Kind: gvr.Resource}, "", nil)
	}
	k := objKey{gvr, m.GetNamespace(), m.GetName()}
	if _, ok := s.objects[k]; ok {
		return nil, apierrors.NewAlreadyExists(gvr.GroupResource(), m.GetName())
	}
	// The UID depends on the object's identity and how often that name was
	// created, not on the revision, so that runs with different write
	// histories still give equal objects equal UIDs (the differential
	// oracle compares end states that contain them).
	s.created[k]++
	sum := sha1.Sum(fmt.Appendf(nil, "%s/%s/%s/%s#%d", k.gvr.Group, k.gvr.Resource, k.namespace, k.name, s.created[k]))
	m.SetUID(types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])))
	m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
	m.SetGeneration(1)
	return s.commit(client, k, watch.Added, obj), nil
}

// update replaces an object; a stale resourceVersion is a conflict. With
// subresource "status" only the status is taken from obj.
func (s *store) update(client string, gvr schema.GroupVersionResource, ns, subresource string, obj runtime.Object) (runtime.Object, error) {
	obj = obj.DeepCopyObject()
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if m.GetNamespace() == "" {
		m.SetNamespace(ns)
	}
	k := objKey{gvr, m.GetNamespace(), m.GetName()}
	old, ok := s.objects[k]
	if !ok {
		return nil, apierrors.NewNotFound(gvr.GroupResource(), m.GetName())
	}
	om, _ := meta.Accessor(old)
	if rv := m.GetResourceVersion(); rv != "" && rv != om.GetResourceVersion() {
		return nil, apierrors.NewConflict(gvr.GroupResource(), m.GetName(),
			fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again (resourceVersion %s, current %s)", rv, om.GetResourceVersion()))
	}
	if subresource == "status" {
		merged, err := withStatus(old, obj)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		obj = merged
		m, _ = meta.Accessor(obj)
	} else if subresource != "" {
		return nil, apierrors.NewMethodNotSupported(gvr.GroupResource(), "update/"+subresource)
	}
	m.SetUID(om.GetUID())
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	gen := om.GetGeneration()
	if subresource == "" && specChanged(old, obj) {
		// As the API server does for objects with a spec: a spec change
		// is a new generation (controllers filter on it).
		gen++
	}
	m.SetGeneration(gen)
	return s.commit(client, k, watch.Modified, obj), nil
}

// specChanged reports whether next has a spec that differs from old's.
func specChanged(old, next runtime.Object) bool {
	if !mayHaveSpec(old) {
		// The lock and the Pods' evidence ConfigMaps are written every
		// few seconds: converting them only to find no spec was most of
		// the cost of a write.
		return false
	}
	o, err1 := runtime.DefaultUnstructuredConverter.ToUnstructured(old)
	n, err2 := runtime.DefaultUnstructuredConverter.ToUnstructured(next)
	if err1 != nil || err2 != nil {
		return false
	}
	before, ok1 := o["spec"]
	after, ok2 := n["spec"]
	return ok1 && ok2 && !reflect.DeepEqual(before, after)
}

// specless holds the typed objects' types, by whether their JSON has no
// top-level "spec" field.
var specless sync.Map // reflect.Type → bool

// mayHaveSpec is false for a typed object whose JSON form has no "spec"
// field, so that specChanged need not convert it.
func mayHaveSpec(obj runtime.Object) bool {
	if _, ok := obj.(runtime.Unstructured); ok {
		return true
	}
	t := reflect.TypeOf(obj)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return true
	}
	if none, ok := specless.Load(t); ok {
		return !none.(bool)
	}
	none := !jsonFieldNamed(t.Elem(), "spec")
	specless.Store(t, none)
	return !none
}

// jsonFieldNamed reports whether struct type t encodes a top-level field
// name, through embedded (inline) structs too.
func jsonFieldNamed(t reflect.Type, name string) bool {
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-":
		case tag == name:
			return true
		case f.Anonymous && (tag == "" || strings.Contains(f.Tag.Get("json"), "inline")):
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() != reflect.Struct || jsonFieldNamed(ft, name) {
				return true // not a struct we can see into: convert to be sure
			}
		case tag == "" && strings.EqualFold(f.Name, name):
			return true
		}
	}
	return false
}

// withStatus returns old with the status field of next.
func withStatus(old, next runtime.Object) (runtime.Object, error) {
	o, err := runtime.DefaultUnstructuredConverter.ToUnstructured(old)
	if err != nil {
		return nil, err
	}
	n, err := runtime.DefaultUnstructuredConverter.ToUnstructured(next)
	if err != nil {
		return nil, err
	}
	o["status"] = n["status"]
	if md, ok := n["metadata"].(map[string]any); ok {
		if omd, ok := o["metadata"].(map[string]any); ok {
			omd["resourceVersion"] = md["resourceVersion"]
		}
	}
	out := reflect.New(reflect.TypeOf(old).Elem()).Interface().(runtime.Object)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o, out); err != nil {
		return nil, err
	}
	return out, nil
}

// patch applies a merge or strategic-merge patch.
func (s *store) patch(client string, gvr schema.GroupVersionResource, ns, name string, pt types.PatchType, patch []byte) (runtime.Object, error) {
	k := objKey{gvr, ns, name}
	old, ok := s.objects[k]
	if !ok {
		return nil, apierrors.NewNotFound(gvr.GroupResource(), name)
	}
	orig, err := json.Marshal(old)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	fresh := reflect.New(reflect.TypeOf(old).Elem()).Interface().(runtime.Object)
	var patched []byte
	switch pt {
	case types.StrategicMergePatchType:
		patched, err = strategicpatch.StrategicMergePatch(orig, patch, fresh)
	case types.MergePatchType:
		// Without patch directives in the patch, a strategic merge is a
		// JSON merge patch except for lists with merge keys, which the
		// controller never sends in merge patches.
		patched, err = strategicpatch.StrategicMergePatch(orig, patch, fresh)
	default:
		return nil, apierrors.NewBadRequest("patch type " + string(pt) + " is not supported by the simulator")
	}
	if err != nil {
		return nil, apierrors.NewBadRequest("patch: " + err.Error())
	}
	if err := json.Unmarshal(patched, fresh); err != nil {
		return nil, apierrors.NewBadRequest("patch: " + err.Error())
	}
	om, _ := meta.Accessor(old)
	fm, _ := meta.Accessor(fresh)
	if rv := fm.GetResourceVersion(); rv != "" && rv != om.GetResourceVersion() {
		return nil, apierrors.NewConflict(gvr.GroupResource(), name, fmt.Errorf("the object has been modified"))
	}
	fm.SetName(name)
	fm.SetNamespace(ns)
	return s.commit(client, k, watch.Modified, fresh), nil
}

// remove deletes an object.
func (s *store) remove(client string, gvr schema.GroupVersionResource, ns, name string) error {
	k := objKey{gvr, ns, name}
	old, ok := s.objects[k]
	if !ok {
		return apierrors.NewNotFound(gvr.GroupResource(), name)
	}
	s.commit(client, k, watch.Deleted, old.DeepCopyObject())
	return nil
}
