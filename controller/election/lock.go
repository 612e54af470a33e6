package election

import (
	"context"
	"encoding/json"

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
// exactly the bytes Get would return, so that change detection agrees.
type lockObject struct {
	rl.Interface
	watch  func(ctx context.Context) (watch.Interface, error)
	decode func(obj runtime.Object) (rec *rl.LeaderElectionRecord, raw []byte, name string, ok bool)
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
		return lockObject{
			Interface: &rl.LeaseLock{LeaseMeta: meta, Client: c.Client.CoordinationV1(), LockConfig: rlc},
			watch: func(ctx context.Context) (watch.Interface, error) {
				return leases.Watch(ctx, nameSelector(c.Name))
			},
			decode: func(obj runtime.Object) (*rl.LeaderElectionRecord, []byte, string, bool) {
				lease, ok := obj.(*coordinationv1.Lease)
				if !ok {
					return nil, nil, "", false
				}
				// Same conversion and encoding as LeaseLock.Get.
				rec := rl.LeaseSpecToLeaderElectionRecord(&lease.Spec)
				raw, err := json.Marshal(*rec)
				if err != nil {
					return nil, nil, "", false
				}
				return rec, raw, lease.Name, true
			},
		}
	}
	configMaps := c.Client.CoreV1().ConfigMaps(c.Namespace)
	return lockObject{
		Interface: &ConfigMapLock{ConfigMapMeta: meta, Client: c.Client.CoreV1(), LockConfig: rlc},
		watch: func(ctx context.Context) (watch.Interface, error) {
			return configMaps.Watch(ctx, nameSelector(c.Name))
		},
		decode: func(obj runtime.Object) (*rl.LeaderElectionRecord, []byte, string, bool) {
			cm, ok := obj.(*corev1.ConfigMap)
			if !ok {
				return nil, nil, "", false
			}
			rec, raw, err := RecordFromConfigMap(cm)
			if err != nil {
				return nil, nil, "", false
			}
			return rec, raw, cm.Name, true
		},
	}
}
