// Package localpath is the local process cluster's dynamic volume
// provisioner, in the manner of the local-path provisioner kind ships: a
// default StorageClass whose claims get a hostPath PersistentVolume backed
// by a fresh directory under the cluster's state directory. The real
// PersistentVolume controller binds the claim to it; when the claim goes
// and the volume is Released with reclaim policy Delete, the provisioner
// removes the directory and the PersistentVolume.
//
// The class binds immediately (kind's waits for the first consumer): every
// node of the local cluster is this host, so a volume suits any node.
package localpath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

const (
	// ProvisionerName is the provisioner of the class.
	ProvisionerName = "konductor.dev/local-path"
	// ClassName is the default StorageClass's name (kind's is "standard").
	ClassName = "standard"

	annProvisionedBy = "pv.kubernetes.io/provisioned-by"
	annDefaultClass  = "storageclass.kubernetes.io/is-default-class"
)

// Config wires a Provisioner.
type Config struct {
	Client kubernetes.Interface
	// Dir holds one directory per volume.
	Dir  string
	Logf func(format string, args ...any)
}

// Provisioner runs until Stop.
type Provisioner struct {
	cfg     Config
	cancel  context.CancelFunc
	done    chan struct{}
	kick    chan struct{}
	pvcs    cache.Store
	pvs     cache.Store
	classes cache.Store
	mu      sync.Mutex
	failed  map[string]string // claim or volume → last error logged
	// reclaimed holds the UIDs of claims whose volume was deleted, so a
	// claim still in the informer's cache is never provisioned again.
	reclaimed map[string]bool
}

// DefaultClass is the StorageClass the provisioner serves, marked default.
func DefaultClass() *storagev1.StorageClass {
	reclaim := corev1.PersistentVolumeReclaimDelete
	mode := storagev1.VolumeBindingImmediate
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: ClassName, Annotations: map[string]string{annDefaultClass: "true"}},
		Provisioner:       ProvisionerName,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &mode,
	}
}

// Start creates (or keeps) the default StorageClass and starts provisioning.
func Start(ctx context.Context, cfg Config) (*Provisioner, error) {
	if cfg.Client == nil || cfg.Dir == "" {
		return nil, errors.New("localpath: Client and Dir are required")
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	_, err := cfg.Client.StorageV1().StorageClasses().Create(ctx, DefaultClass(), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("localpath: create StorageClass %s: %w", ClassName, err)
	}
	p := &Provisioner{cfg: cfg, done: make(chan struct{}), kick: make(chan struct{}, 1), failed: map[string]string{}, reclaimed: map[string]bool{}}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	kick := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.poke() },
		UpdateFunc: func(any, any) { p.poke() },
		DeleteFunc: func(any) { p.poke() },
	}
	var synced []cache.InformerSynced
	for _, inf := range []cache.SharedIndexInformer{
		factory.Core().V1().PersistentVolumeClaims().Informer(),
		factory.Core().V1().PersistentVolumes().Informer(),
		factory.Storage().V1().StorageClasses().Informer(),
	} {
		if _, err := inf.AddEventHandler(kick); err != nil {
			cancel()
			return nil, err
		}
		synced = append(synced, inf.HasSynced)
	}
	p.pvcs = factory.Core().V1().PersistentVolumeClaims().Informer().GetStore()
	p.pvs = factory.Core().V1().PersistentVolumes().Informer().GetStore()
	p.classes = factory.Storage().V1().StorageClasses().Informer().GetStore()
	factory.Start(runCtx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		cancel()
		factory.Shutdown()
		return nil, errors.New("localpath: informers did not sync")
	}
	go func() {
		defer close(p.done)
		defer factory.Shutdown()
		// Failed API calls are retried on the next event or tick.
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-p.kick:
			case <-tick.C:
			}
			p.reconcile(runCtx)
		}
	}()
	return p, nil
}

func (p *Provisioner) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Stop ends provisioning; volumes stay until the cluster's directory goes.
func (p *Provisioner) Stop() {
	p.cancel()
	<-p.done
}

func (p *Provisioner) ours(class string) *storagev1.StorageClass {
	o, ok, _ := p.classes.GetByKey(class)
	if !ok {
		return nil
	}
	sc := o.(*storagev1.StorageClass)
	if sc.Provisioner != ProvisionerName {
		return nil
	}
	return sc
}

// reconcile provisions unbound claims of our classes and deletes released
// volumes we made.
func (p *Provisioner) reconcile(ctx context.Context) {
	bound := map[string]bool{} // claim UIDs that have a volume of ours
	for _, o := range p.pvs.List() {
		pv := o.(*corev1.PersistentVolume)
		if pv.Annotations[annProvisionedBy] != ProvisionerName {
			continue
		}
		if pv.Spec.ClaimRef != nil {
			bound[string(pv.Spec.ClaimRef.UID)] = true
		}
		if pv.Status.Phase == corev1.VolumeReleased && pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete && pv.DeletionTimestamp == nil {
			p.report("pv/"+pv.Name, p.delete(ctx, pv))
		}
	}
	for _, o := range p.pvcs.List() {
		pvc := o.(*corev1.PersistentVolumeClaim)
		if pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil || bound[string(pvc.UID)] || p.reclaimed[string(pvc.UID)] {
			continue
		}
		class := ""
		if pvc.Spec.StorageClassName != nil {
			class = *pvc.Spec.StorageClassName
		}
		sc := p.ours(class)
		if sc == nil {
			continue // another class, none, or ours is gone
		}
		p.report("pvc/"+pvc.Namespace+"/"+pvc.Name, p.provision(ctx, pvc, sc))
	}
}

func (p *Provisioner) report(key string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		delete(p.failed, key)
		return
	}
	if p.failed[key] != err.Error() {
		p.failed[key] = err.Error()
		p.cfg.Logf("localpath: %s: %v", key, err)
	}
}

// provision creates the claim's directory and a PersistentVolume that
// names the claim, so the PersistentVolume controller binds the two.
func (p *Provisioner) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass) error {
	if pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock {
		return fmt.Errorf("block volumes are not supported")
	}
	// Every access mode works: all nodes are this host and see the
	// directory.
	name := "pvc-" + string(pvc.UID)
	dir := filepath.Join(p.cfg.Dir, name+"_"+pvc.Namespace+"_"+pvc.Name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	// As the local-path provisioner: open to every user; fsGroup does not
	// apply to hostPath volumes.
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	reclaim := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		reclaim = *sc.ReclaimPolicy
	}
	hostPathType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annProvisionedBy: ProvisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              sc.Name,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType}},
			MountOptions:           sc.MountOptions,
		},
	}
	_, err := p.cfg.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		p.cfg.Logf("localpath: provisioned %s for %s/%s at %s", name, pvc.Namespace, pvc.Name, dir)
	}
	return err
}

// delete removes a released volume's directory, then the object.
func (p *Provisioner) delete(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Spec.HostPath == nil || !strings.HasPrefix(pv.Spec.HostPath.Path, p.cfg.Dir+string(filepath.Separator)) {
		return fmt.Errorf("volume %s is not under %s; left alone", pv.Name, p.cfg.Dir)
	}
	if err := os.RemoveAll(pv.Spec.HostPath.Path); err != nil {
		return err
	}
	err := p.cfg.Client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &pv.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if pv.Spec.ClaimRef != nil {
		p.reclaimed[string(pv.Spec.ClaimRef.UID)] = true
	}
	p.cfg.Logf("localpath: deleted %s", pv.Name)
	return nil
}
