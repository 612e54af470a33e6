package localpath

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// TestProvisionAndReclaim: a claim of the default class gets a hostPath
// volume naming it; once released, the directory and the volume go.
// (Binding itself is the PersistentVolume controller's, exercised by the
// cluster tests.)
func TestProvisionAndReclaim(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	client := fake.NewClientset()
	dir := t.TempDir()
	p, err := Start(ctx, Config{Client: client, Dir: dir, Logf: t.Logf})
	g.Expect(err).NotTo(HaveOccurred())
	defer p.Stop()

	sc, err := client.StorageV1().StorageClasses().Get(ctx, ClassName, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sc.Annotations).To(HaveKeyWithValue("storageclass.kubernetes.io/is-default-class", "true"))

	claim := func(name, class string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: name, UID: types.UID("uid-" + name)},
			Spec: corev1.PersistentVolumeClaimSpec{
				StorageClassName: ptr.To(class),
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}
	}
	_, err = client.CoreV1().PersistentVolumeClaims("db").Create(ctx, claim("data-postgres-0", ClassName), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = client.CoreV1().PersistentVolumeClaims("db").Create(ctx, claim("elsewhere", "other"), metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	var pv *corev1.PersistentVolume
	g.Eventually(func() error {
		pv, err = client.CoreV1().PersistentVolumes().Get(ctx, "pvc-uid-data-postgres-0", metav1.GetOptions{})
		return err
	}).WithTimeout(10 * time.Second).Should(Succeed())
	g.Expect(pv.Spec.ClaimRef.Name).To(Equal("data-postgres-0"))
	g.Expect(pv.Spec.ClaimRef.UID).To(BeEquivalentTo("uid-data-postgres-0"))
	g.Expect(pv.Spec.StorageClassName).To(Equal(ClassName))
	g.Expect(pv.Spec.Capacity.Storage().String()).To(Equal("1Gi"))
	g.Expect(pv.Spec.HostPath).NotTo(BeNil())
	st, err := os.Stat(pv.Spec.HostPath.Path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Mode().Perm()).To(Equal(os.FileMode(0o777)))
	pvs, err := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pvs.Items).To(HaveLen(1), "a claim of another class is not ours")

	// The claim is gone; the PersistentVolume controller marks the volume
	// Released.
	g.Expect(client.CoreV1().PersistentVolumeClaims("db").Delete(ctx, "data-postgres-0", metav1.DeleteOptions{})).To(Succeed())
	pv.Status.Phase = corev1.VolumeReleased
	_, err = client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() error {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err
	}).WithTimeout(10 * time.Second).Should(Satisfy(apierrors.IsNotFound))
	_, err = os.Stat(pv.Spec.HostPath.Path)
	g.Expect(os.IsNotExist(err)).To(BeTrue(), "volume directory removed: %v", err)
}
