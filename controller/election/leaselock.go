package election

import (
	"context"
	"encoding/json"
	"errors"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	rl "k8s.io/client-go/tools/leaderelection/resourcelock"
)

// leaseLock keeps the record in a coordination.k8s.io Lease's spec exactly
// as client-go's LeaseLock does (the two interoperate), and in addition
// writes the holder's process annotation in the same request. client-go's
// LeaseLock cannot carry annotations of its own.
type leaseLock struct {
	meta    metav1.ObjectMeta
	client  coordinationv1client.LeasesGetter
	config  rl.ResourceLockConfig
	lease   *coordinationv1.Lease
	process processAnnotation
}

var _ rl.Interface = (*leaseLock)(nil)

func (l *leaseLock) Get(ctx context.Context) (*rl.LeaderElectionRecord, []byte, error) {
	lease, err := l.client.Leases(l.meta.Namespace).Get(ctx, l.meta.Name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	l.lease = lease
	return recordFromLease(lease)
}

// recordFromLease converts and encodes as client-go's LeaseLock.Get does,
// so that change detection agrees with it byte for byte.
func recordFromLease(lease *coordinationv1.Lease) (*rl.LeaderElectionRecord, []byte, error) {
	rec := rl.LeaseSpecToLeaderElectionRecord(&lease.Spec)
	raw, err := json.Marshal(*rec)
	if err != nil {
		return nil, nil, err
	}
	return rec, raw, nil
}

func (l *leaseLock) Create(ctx context.Context, ler rl.LeaderElectionRecord) error {
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: l.meta.Namespace, Name: l.meta.Name, Labels: l.meta.Labels},
		Spec:       rl.LeaderElectionRecordToLeaseSpec(&ler),
	}
	lease.Annotations = l.process.apply(lease.Annotations)
	created, err := l.client.Leases(l.meta.Namespace).Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	l.lease = created
	return nil
}

func (l *leaseLock) Update(ctx context.Context, ler rl.LeaderElectionRecord) error {
	if l.lease == nil {
		return errors.New("election: lease lock " + l.Describe() + " not initialised; call Get or Create first")
	}
	// A copy: a failed update must not leave an unaccepted record cached.
	lease := l.lease.DeepCopy()
	lease.Spec = rl.LeaderElectionRecordToLeaseSpec(&ler)
	lease.Annotations = l.process.apply(lease.Annotations)
	updated, err := l.client.Leases(l.meta.Namespace).Update(ctx, lease, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	l.lease = updated
	return nil
}

func (l *leaseLock) RecordEvent(s string) {
	if l.config.EventRecorder == nil || l.lease == nil {
		return
	}
	subject := &coordinationv1.Lease{ObjectMeta: l.lease.ObjectMeta}
	subject.Kind = "Lease"
	subject.APIVersion = coordinationv1.SchemeGroupVersion.String()
	l.config.EventRecorder.Eventf(subject, corev1.EventTypeNormal, "LeaderElection", "%s %s", l.config.Identity, s)
}

func (l *leaseLock) Describe() string { return l.meta.Namespace + "/" + l.meta.Name }

func (l *leaseLock) Identity() string { return l.config.Identity }

// lastProcess is the process annotation of the Lease last read or written.
func (l *leaseLock) lastProcess() string {
	if l.lease == nil {
		return ""
	}
	return l.lease.Annotations[ProcessAnnotationKey]
}

// processAnnotation is what a lock writes into ProcessAnnotationKey with its
// next Create or Update: nothing is touched until set is called; then a
// value is written, or "" removes the annotation.
type processAnnotation struct {
	managed bool
	value   string
}

func (p *processAnnotation) set(value string) { p.managed, p.value = true, value }

// apply returns annotations with the process annotation set or removed.
func (p *processAnnotation) apply(annotations map[string]string) map[string]string {
	if !p.managed {
		return annotations
	}
	if p.value == "" {
		delete(annotations, ProcessAnnotationKey)
		return annotations
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[ProcessAnnotationKey] = p.value
	return annotations
}
