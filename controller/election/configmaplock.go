package election

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ConfigMapLock keeps the leader election record as JSON in the ConfigMap
// annotation rl.LeaderElectionRecordAnnotationKey, the format the Kong
// ingress controller 1.x and older client-go releases used. It implements
// resourcelock.Interface, so client-go's leaderelection package can drive it
// too. Updates carry the resourceVersion of the last Get, Create or Update,
// so the API server rejects an update made from a stale read (409 Conflict).
//
// Like client-go's locks it is not safe for concurrent use.
type ConfigMapLock struct {
	// ConfigMapMeta holds the Namespace and Name of the ConfigMap.
	ConfigMapMeta metav1.ObjectMeta
	Client        corev1client.ConfigMapsGetter
	LockConfig    rl.ResourceLockConfig

	cm      *corev1.ConfigMap
	process processAnnotation
}

var _ rl.Interface = (*ConfigMapLock)(nil)

// Get reads the record and its raw bytes. A ConfigMap without the annotation
// yields an empty record (no holder), which any candidate may take.
func (l *ConfigMapLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	cm, err := l.Client.ConfigMaps(l.ConfigMapMeta.Namespace).Get(ctx, l.ConfigMapMeta.Name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	l.cm = cm
	return RecordFromConfigMap(cm)
}

// Create creates the ConfigMap holding ler.
func (l *ConfigMapLock) Create(ctx context.Context, ler rl.LeaderElectionRecord) error {
	raw, err := json.Marshal(ler)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace:   l.ConfigMapMeta.Namespace,
		Name:        l.ConfigMapMeta.Name,
		Labels:      l.ConfigMapMeta.Labels,
		Annotations: map[string]string{rl.LeaderElectionRecordAnnotationKey: string(raw)},
	}}
	cm.Annotations = l.process.apply(cm.Annotations)
	created, err := l.Client.ConfigMaps(l.ConfigMapMeta.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.cm = created
	return nil
}

// Update replaces the record, conditional on the resourceVersion last seen.
func (l *ConfigMapLock) Update(ctx context.Context, ler rl.LeaderElectionRecord) error {
	if l.cm == nil {
		return errors.New("election: configmap lock " + l.Describe() + " not initialised; call Get or Create first")
	}
	raw, err := json.Marshal(ler)
	if err != nil {
		return err
	}
	// Work on a copy: a failed update must not leave a record in the cache
	// that the server never accepted.
	cm := l.cm.DeepCopy()
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[rl.LeaderElectionRecordAnnotationKey] = string(raw)
	cm.Annotations = l.process.apply(cm.Annotations)
	updated, err := l.Client.ConfigMaps(l.ConfigMapMeta.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.cm = updated
	return nil
}

// RecordEvent records an event on the ConfigMap when an EventRecorder is set.
func (l *ConfigMapLock) RecordEvent(s string) {
	if l.LockConfig.EventRecorder == nil || l.cm == nil {
		return
	}
	subject := &corev1.ConfigMap{ObjectMeta: l.cm.ObjectMeta}
	subject.Kind = "ConfigMap"
	subject.APIVersion = "v1"
	l.LockConfig.EventRecorder.Eventf(subject, corev1.EventTypeNormal, "LeaderElection", "%s %s", l.LockConfig.Identity, s)
}

// Describe names the lock as namespace/name.
func (l *ConfigMapLock) Describe() string {
	return l.ConfigMapMeta.Namespace + "/" + l.ConfigMapMeta.Name
}

// lastProcess is the process annotation of the ConfigMap last read or
// written.
func (l *ConfigMapLock) lastProcess() string {
	if l.cm == nil {
		return ""
	}
	return l.cm.Annotations[ProcessAnnotationKey]
}

// Identity returns this candidate's identity.
func (l *ConfigMapLock) Identity() string { return l.LockConfig.Identity }

// RecordFromConfigMap decodes the leader election record stored in cm. The
// raw bytes are the annotation's value, so that two reads of an unchanged
// record compare equal byte for byte.
func RecordFromConfigMap(cm *corev1.ConfigMap) (*rl.LeaderElectionRecord, []byte, error) {
	var rec rl.LeaderElectionRecord
	value, ok := cm.Annotations[rl.LeaderElectionRecordAnnotationKey]
	if !ok {
		return &rec, nil, nil
	}
	if err := json.Unmarshal([]byte(value), &rec); err != nil {
		return nil, nil, fmt.Errorf("configmap %s/%s: annotation %s: invalid leader election record: %w",
			cm.Namespace, cm.Name, rl.LeaderElectionRecordAnnotationKey, err)
	}
	return &rec, []byte(value), nil
}
