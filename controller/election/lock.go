package election

import (
	"context"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// lockObject is what the elector needs beyond resourcelock.Interface: a way
// to watch the one lock object and to read the record from a watch event in
// exactly the bytes Get would return, so that change detection agrees; and
// the holder's process annotation beside the record.
type lockObject struct {
	rl.Interface
	watch  func(ctx context.Context) (watch.Interface, error)
	decode func(obj runtime.Object) (lockState, bool)
	// setProcess sets the process annotation the next Create or Update
	// writes ("" removes it); lastProcess returns the one last read or
	// written.
	setProcess  func(value string)
	lastProcess func() string
}

// lockState is the lock object as a watch event shows it.
type lockState struct {
	rec     *rl.LeaderElectionRecord
	raw     []byte
	name    string
	process string
}

// nameSelector asks for the one object by name. With it the API server
// authorises the watch against RBAC rules restricted by resourceNames.
func nameSelector(name string) metav1.ListOptions {
	return metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
}

func newLockObject(c *Config) lockObject {
	rlc := rl.ResourceLockConfig{Identity: c.Identity}
	meta := metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name}
	if c.LockType == LockTypeLeases {
		leases := c.Client.CoordinationV1().Leases(c.Namespace)
		l := &leaseLock{meta: meta, client: c.Client.CoordinationV1(), config: rlc}
		return lockObject{
			Interface: l,
			watch: func(ctx context.Context) (watch.Interface, error) {
				return leases.Watch(ctx, nameSelector(c.Name))
			},
			decode: func(obj runtime.Object) (lockState, bool) {
				lease, ok := obj.(*coordinationv1.Lease)
				if !ok {
					return lockState{}, false
				}
				rec, raw, err := recordFromLease(lease)
				if err != nil {
					return lockState{}, false
				}
				return lockState{rec, raw, lease.Name, lease.Annotations[ProcessAnnotationKey]}, true
			},
			setProcess:  l.process.set,
			lastProcess: l.lastProcess,
		}
	}
	configMaps := c.Client.CoreV1().ConfigMaps(c.Namespace)
	l := &ConfigMapLock{ConfigMapMeta: meta, Client: c.Client.CoreV1(), LockConfig: rlc}
	return lockObject{
		Interface: l,
		watch: func(ctx context.Context) (watch.Interface, error) {
			return configMaps.Watch(ctx, nameSelector(c.Name))
		},
		decode: func(obj runtime.Object) (lockState, bool) {
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok {
				return lockState{}, false
			}
			rec, raw, err := RecordFromConfigMap(cm)
			if err != nil {
				return lockState{}, false
			}
			return lockState{rec, raw, cm.Name, cm.Annotations[ProcessAnnotationKey]}, true
		},
		setProcess:  l.process.set,
		lastProcess: l.lastProcess,
	}
}
