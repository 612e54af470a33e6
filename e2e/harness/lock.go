package harness

import (
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderRecord reads the election record from a ConfigMap lock.
func LeaderRecord(cm *corev1.ConfigMap) (resourcelock.LeaderElectionRecord, error) {
	var rec resourcelock.LeaderElectionRecord
	raw, ok := cm.Annotations[resourcelock.LeaderElectionRecordAnnotationKey]
	if !ok {
		return rec, fmt.Errorf("ConfigMap %s/%s: no annotation %s", cm.Namespace, cm.Name, resourcelock.LeaderElectionRecordAnnotationKey)
	}
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return rec, fmt.Errorf("ConfigMap %s/%s: annotation %s: %w", cm.Namespace, cm.Name, resourcelock.LeaderElectionRecordAnnotationKey, err)
	}
	return rec, nil
}

// LeaderPod returns the name of the pod holding a ConfigMap lock. konductor
// identifies itself as <pod name>_<random suffix>.
func LeaderPod(cm *corev1.ConfigMap) (string, error) {
	rec, err := LeaderRecord(cm)
	if err != nil {
		return "", err
	}
	if rec.HolderIdentity == "" {
		return "", fmt.Errorf("ConfigMap %s/%s: the lock is released (no holder)", cm.Namespace, cm.Name)
	}
	pod, _, ok := strings.Cut(rec.HolderIdentity, "_")
	if !ok || pod == "" {
		return "", fmt.Errorf("ConfigMap %s/%s: holder %q is not <pod>_<suffix>", cm.Namespace, cm.Name, rec.HolderIdentity)
	}
	return pod, nil
}
