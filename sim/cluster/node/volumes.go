package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Volumes, as the process kubelet provides them. Each lives on the host
// under the pod's directory (volumes/<name>) and is bind-mounted at its
// mountPath inside the container's private mount namespace, honouring
// subPath, subPathExpr and readOnly:
//
//   - emptyDir: a directory with mode 0777, removed with the pod. medium
//     Memory is a plain directory too (no tmpfs), and sizeLimit is not
//     enforced (the kubelet only enforces it by eviction).
//   - configMap, secret, downwardAPI and projected (configMap, secret,
//     downwardAPI and serviceAccountToken sources): files written like the
//     kubelet's atomic writer (a ..data symlink swapped in one rename), with
//     items, defaultMode, mode and optional; mounted read-only; content is
//     refreshed every Config.VolumeRefresh and tokens at 80% of their life.
//   - persistentVolumeClaim: the bound PersistentVolume's hostPath or local
//     path (see package localpath for the provisioner).
//   - hostPath: the host's path, with the type checks.
//
// fsGroup is applied as the kubelet does to emptyDir, configMap, secret,
// downwardAPI, projected and local volumes (group fsGroup, group read or
// read/write, setgid directories), not to hostPath. Any other volume type
// fails the pod's setup with an error naming it.

// defaultVolumeRefresh is Config.VolumeRefresh's default.
const defaultVolumeRefresh = 20 * time.Second

// podVolume is one prepared volume.
type podVolume struct {
	name     string
	path     string
	readOnly bool // always mounted read-only
	// content computes the files of an API-backed volume; nil otherwise.
	content func(ctx context.Context) (map[string]volumeFile, error)
	// fsGroup applies to this volume type.
	ownership bool
	hash      string // of the files last written
	// token, tokenAt and tokenLife cache a projected service-account token.
	token     []byte
	tokenAt   time.Time
	tokenLife time.Duration
}

// volumeFile is one file of an API-backed volume.
type volumeFile struct {
	data []byte
	mode os.FileMode
}

// mountSpec is one bind mount into a container's mount namespace.
type mountSpec struct {
	source, target string
	dir            bool
	readOnly       bool
}

// setupVolumes prepares every volume of the pod; it is idempotent, so a
// setup retried after an error (an unbound claim, a missing ConfigMap)
// finishes what is left.
func (r *podRunner) setupVolumes(ctx context.Context) error {
	for i := range r.pod.Spec.Volumes {
		spec := &r.pod.Spec.Volumes[i]
		r.mu.Lock()
		_, done := r.volumes[spec.Name]
		r.mu.Unlock()
		if done {
			continue
		}
		v, err := r.prepareVolume(ctx, spec)
		if err != nil {
			return fmt.Errorf("volume %q: %w", spec.Name, err)
		}
		if v.content != nil {
			if err := r.writeVolume(ctx, v); err != nil {
				return fmt.Errorf("volume %q: %w", spec.Name, err)
			}
		}
		r.mu.Lock()
		r.volumes[spec.Name] = v
		r.mu.Unlock()
	}
	return nil
}

func (r *podRunner) prepareVolume(ctx context.Context, spec *corev1.Volume) (*podVolume, error) {
	v := &podVolume{name: spec.Name, path: filepath.Join(r.dir, "volumes", spec.Name), ownership: true}
	pod := r.pod
	src := spec.VolumeSource
	switch {
	case src.EmptyDir != nil:
		if err := os.MkdirAll(v.path, 0o777); err != nil {
			return nil, err
		}
		// MkdirAll is subject to the umask; the kubelet's emptyDir is 0777.
		if err := os.Chmod(v.path, 0o777); err != nil {
			return nil, err
		}
		return v, r.applyFSGroup(v, false)
	case src.ConfigMap != nil:
		s := src.ConfigMap
		v.readOnly = true
		v.content = func(ctx context.Context) (map[string]volumeFile, error) {
			cm, err := r.a.cfg.Client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(s.Optional) {
					return map[string]volumeFile{}, nil
				}
				return nil, fmt.Errorf("configmap %s: %w", s.Name, err)
			}
			return keyFiles("configmap "+s.Name, configMapData(cm), s.Items, s.DefaultMode, isTrue(s.Optional))
		}
	case src.Secret != nil:
		s := src.Secret
		v.readOnly = true
		v.content = func(ctx context.Context) (map[string]volumeFile, error) {
			sec, err := r.a.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, s.SecretName, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(s.Optional) {
					return map[string]volumeFile{}, nil
				}
				return nil, fmt.Errorf("secret %s: %w", s.SecretName, err)
			}
			return keyFiles("secret "+s.SecretName, sec.Data, s.Items, s.DefaultMode, isTrue(s.Optional))
		}
	case src.DownwardAPI != nil:
		s := src.DownwardAPI
		v.readOnly = true
		v.content = func(context.Context) (map[string]volumeFile, error) {
			return r.downwardFiles(s.Items, s.DefaultMode)
		}
	case src.Projected != nil:
		v.readOnly = true
		v.content = func(ctx context.Context) (map[string]volumeFile, error) {
			return r.projectedFiles(ctx, v, src.Projected)
		}
	case src.PersistentVolumeClaim != nil:
		path, local, err := r.claimPath(ctx, src.PersistentVolumeClaim.ClaimName)
		if err != nil {
			return nil, err
		}
		v.path, v.readOnly, v.ownership = path, src.PersistentVolumeClaim.ReadOnly, local
		if local {
			return v, r.applyFSGroup(v, false)
		}
		return v, nil
	case src.HostPath != nil:
		v.path, v.ownership = src.HostPath.Path, false
		return v, checkHostPath(src.HostPath)
	default:
		return nil, fmt.Errorf("volume type %s is not supported by the process kubelet (emptyDir, configMap, secret, downwardAPI, projected, persistentVolumeClaim and hostPath are)", volumeType(src))
	}
	return v, nil
}

// volumeType names the set field of a VolumeSource, as in the API.
func volumeType(src corev1.VolumeSource) string {
	v := reflect.ValueOf(src)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return "(none)"
}

// claimPath finds the path of the PersistentVolume bound to claim.
func (r *podRunner) claimPath(ctx context.Context, claim string) (path string, local bool, err error) {
	ns := r.pod.Namespace
	pvc, err := r.a.cfg.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil {
		return "", false, fmt.Errorf("persistentvolumeclaim %s: %w", claim, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", false, fmt.Errorf("persistentvolumeclaim %s/%s is not bound yet (phase %s)", ns, claim, pvc.Status.Phase)
	}
	pv, err := r.a.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", false, fmt.Errorf("persistentvolume %s of claim %s: %w", pvc.Spec.VolumeName, claim, err)
	}
	switch {
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path, false, checkHostPath(pv.Spec.HostPath)
	case pv.Spec.Local != nil:
		st, err := os.Stat(pv.Spec.Local.Path)
		if err != nil || !st.IsDir() {
			return "", false, fmt.Errorf("persistentvolume %s: local path %s is not a directory (%v)", pv.Name, pv.Spec.Local.Path, err)
		}
		return pv.Spec.Local.Path, true, nil
	}
	return "", false, fmt.Errorf("persistentvolume %s: only hostPath and local volumes can be mounted by the process kubelet", pv.Name)
}

// checkHostPath applies a hostPath volume's type.
func checkHostPath(h *corev1.HostPathVolumeSource) error {
	typ := corev1.HostPathUnset
	if h.Type != nil {
		typ = *h.Type
	}
	st, statErr := os.Stat(h.Path)
	want := func(ok bool, what string) error {
		if statErr != nil {
			return fmt.Errorf("hostPath %s: %w", h.Path, statErr)
		}
		if !ok {
			return fmt.Errorf("hostPath %s is not a %s", h.Path, what)
		}
		return nil
	}
	switch typ {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if statErr != nil {
			return os.MkdirAll(h.Path, 0o755)
		}
		return want(st.IsDir(), "directory")
	case corev1.HostPathFileOrCreate:
		if statErr != nil {
			f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return want(st.Mode().IsRegular(), "file")
	case corev1.HostPathDirectory:
		return want(statErr == nil && st.IsDir(), "directory")
	case corev1.HostPathFile:
		return want(statErr == nil && st.Mode().IsRegular(), "file")
	case corev1.HostPathSocket:
		return want(statErr == nil && st.Mode()&os.ModeSocket != 0, "socket")
	case corev1.HostPathCharDev:
		return want(statErr == nil && st.Mode()&os.ModeCharDevice != 0, "character device")
	case corev1.HostPathBlockDev:
		return want(statErr == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0, "block device")
	}
	return fmt.Errorf("hostPath %s: unknown type %q", h.Path, typ)
}

func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out
}

// keyFiles selects the files of a configMap or secret volume: every key, or
// the listed items at their paths (a missing key is an error unless the
// source is optional).
func keyFiles(what string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional bool) (map[string]volumeFile, error) {
	mode := os.FileMode(corev1.ConfigMapVolumeSourceDefaultMode)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	out := map[string]volumeFile{}
	if len(items) == 0 {
		for k, v := range data {
			out[k] = volumeFile{data: v, mode: mode}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s has no key %q", what, it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out[it.Path] = volumeFile{data: v, mode: m}
	}
	return out, nil
}

// downwardFiles renders downwardAPI items.
func (r *podRunner) downwardFiles(items []corev1.DownwardAPIVolumeFile, defaultMode *int32) (map[string]volumeFile, error) {
	mode := os.FileMode(corev1.DownwardAPIVolumeSourceDefaultMode)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	podIP := ""
	if sb := r.sandboxOrNil(); sb != nil {
		podIP = sb.IP.String()
	}
	out := map[string]volumeFile{}
	for _, it := range items {
		var value string
		var err error
		switch {
		case it.FieldRef != nil:
			switch it.FieldRef.FieldPath {
			case "metadata.labels":
				value = formatMap(r.pod.Labels)
			case "metadata.annotations":
				value = formatMap(r.pod.Annotations)
			default:
				value, err = fieldValue(r.pod, podIP, r.a.hostIP, it.FieldRef.FieldPath)
			}
		case it.ResourceFieldRef != nil:
			c := findContainer(r.pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("downwardAPI %s: container %q not found", it.Path, it.ResourceFieldRef.ContainerName)
			}
			value, err = resourceFieldValue(r.pod, c, it.ResourceFieldRef, r.a.allocatable)
		default:
			err = errors.New("item has neither fieldRef nor resourceFieldRef")
		}
		if err != nil {
			return nil, fmt.Errorf("downwardAPI %s: %w", it.Path, err)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode)
		}
		out[it.Path] = volumeFile{data: []byte(value), mode: m}
	}
	return out, nil
}

// formatMap renders labels or annotations as the kubelet does: sorted
// key="value" lines.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// projectedFiles merges the sources of a projected volume. The token of a
// serviceAccountToken source is reused until 80% of its life has passed,
// as the kubelet's token manager does.
func (r *podRunner) projectedFiles(ctx context.Context, v *podVolume, p *corev1.ProjectedVolumeSource) (map[string]volumeFile, error) {
	out := map[string]volumeFile{}
	add := func(files map[string]volumeFile) {
		for k, f := range files {
			out[k] = f
		}
	}
	for _, s := range p.Sources {
		switch {
		case s.ConfigMap != nil:
			cm, err := r.a.cfg.Client.CoreV1().ConfigMaps(r.pod.Namespace).Get(ctx, s.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(s.ConfigMap.Optional) {
					continue
				}
				return nil, fmt.Errorf("configmap %s: %w", s.ConfigMap.Name, err)
			}
			files, err := keyFiles("configmap "+s.ConfigMap.Name, configMapData(cm), s.ConfigMap.Items, p.DefaultMode, isTrue(s.ConfigMap.Optional))
			if err != nil {
				return nil, err
			}
			add(files)
		case s.Secret != nil:
			sec, err := r.a.cfg.Client.CoreV1().Secrets(r.pod.Namespace).Get(ctx, s.Secret.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(s.Secret.Optional) {
					continue
				}
				return nil, fmt.Errorf("secret %s: %w", s.Secret.Name, err)
			}
			files, err := keyFiles("secret "+s.Secret.Name, sec.Data, s.Secret.Items, p.DefaultMode, isTrue(s.Secret.Optional))
			if err != nil {
				return nil, err
			}
			add(files)
		case s.DownwardAPI != nil:
			files, err := r.downwardFiles(s.DownwardAPI.Items, p.DefaultMode)
			if err != nil {
				return nil, err
			}
			add(files)
		case s.ServiceAccountToken != nil:
			if v.token == nil || time.Since(v.tokenAt) > v.tokenLife*8/10 {
				tok, life, err := r.requestToken(ctx, s.ServiceAccountToken)
				if err != nil {
					return nil, err
				}
				v.token, v.tokenAt, v.tokenLife = []byte(tok), time.Now(), life
			}
			mode := os.FileMode(corev1.ProjectedVolumeSourceDefaultMode)
			if p.DefaultMode != nil {
				mode = os.FileMode(*p.DefaultMode)
			}
			out[s.ServiceAccountToken.Path] = volumeFile{data: v.token, mode: mode}
		default:
			return nil, errors.New("projected source of this type is not supported by the process kubelet (configMap, secret, downwardAPI and serviceAccountToken are)")
		}
	}
	return out, nil
}

// requestToken asks for a token bound to the pod, as the kubelet's token
// manager does for projected serviceAccountToken sources.
func (r *podRunner) requestToken(ctx context.Context, s *corev1.ServiceAccountTokenProjection) (string, time.Duration, error) {
	sa := r.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	expiry := int64(3600)
	if s.ExpirationSeconds != nil {
		expiry = *s.ExpirationSeconds
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &expiry,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: r.pod.Name, UID: r.pod.UID},
	}}
	if s.Audience != "" {
		req.Spec.Audiences = []string{s.Audience}
	}
	tok, err := r.a.cfg.Client.CoreV1().ServiceAccounts(r.pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("service account %s token: %w", sa, err)
	}
	life := time.Duration(expiry) * time.Second
	if tok.Status.ExpirationTimestamp.After(time.Now()) {
		life = time.Until(tok.Status.ExpirationTimestamp.Time)
	}
	return tok.Status.Token, life, nil
}

// writeVolume computes an API-backed volume's files and, if they changed,
// swaps them in atomically.
func (r *podRunner) writeVolume(ctx context.Context, v *podVolume) error {
	files, err := v.content(ctx)
	if err != nil {
		return err
	}
	h := sha256.New()
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00", k, files[k].mode, len(files[k].data))
		h.Write(files[k].data)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum == v.hash {
		return nil
	}
	if err := r.writeAtomic(v, files); err != nil {
		return err
	}
	v.hash = sum
	return nil
}

// writeAtomic lays files out as the kubelet's atomic writer does: the data
// in a fresh "..<time>" directory, a "..data" symlink to it replaced by one
// rename, and a symlink per top-level name into ..data. A process reading
// through the mount sees either the old or the new set, never a mix.
func (r *podRunner) writeAtomic(v *podVolume, files map[string]volumeFile) error {
	if err := os.MkdirAll(v.path, 0o755); err != nil {
		return err
	}
	gen := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	genDir := filepath.Join(v.path, gen)
	if err := os.Mkdir(genDir, 0o755); err != nil {
		return err
	}
	top := map[string]bool{}
	for name, f := range files {
		clean := filepath.Clean(name)
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("file path %q must be relative and may not start with '..'", name)
		}
		p := filepath.Join(genDir, clean)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode.Perm()); err != nil {
			return err
		}
		// WriteFile's mode is subject to the umask.
		if err := os.Chmod(p, f.mode.Perm()); err != nil {
			return err
		}
		top[strings.SplitN(clean, "/", 2)[0]] = true
	}
	if err := r.applyFSGroupTo(genDir, true); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(v.path, "..data"))
	tmp := filepath.Join(v.path, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(gen, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(v.path, "..data")); err != nil {
		return err
	}
	for name := range top {
		link := filepath.Join(v.path, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", name) {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	entries, _ := os.ReadDir(v.path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") || top[e.Name()] {
			continue
		}
		_ = os.Remove(filepath.Join(v.path, e.Name())) // a key that went away
	}
	if old != "" && old != gen {
		_ = os.RemoveAll(filepath.Join(v.path, old))
	}
	return nil
}

// refreshVolumes rewrites API-backed volumes until the pod stops: changed
// ConfigMaps and Secrets reach the files, tokens are renewed at 80% of
// their life (client-go rereads them).
func (r *podRunner) refreshVolumes() {
	t := time.NewTicker(r.a.cfg.VolumeRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		vols := make([]*podVolume, 0, len(r.volumes))
		for _, v := range r.volumes {
			if v.content != nil {
				vols = append(vols, v)
			}
		}
		r.mu.Unlock()
		for _, v := range vols {
			if err := r.writeVolume(r.ctx, v); err != nil && r.ctx.Err() == nil {
				r.logf("refresh volume %s: %v", v.name, err)
			}
		}
	}
}

// applyFSGroup gives a writable volume to the pod's fsGroup, as the
// kubelet's SetVolumeOwnership does.
func (r *podRunner) applyFSGroup(v *podVolume, readOnly bool) error {
	if !v.ownership {
		return nil
	}
	return r.applyFSGroupTo(v.path, readOnly)
}

// applyFSGroupTo walks root: group fsGroup; files get group read (and write
// unless readOnly), directories also group execute and setgid so new files
// inherit the group.
func (r *podRunner) applyFSGroupTo(root string, readOnly bool) error {
	sc := r.pod.Spec.SecurityContext
	if sc == nil || sc.FSGroup == nil {
		return nil
	}
	gid := int(*sc.FSGroup)
	mask := os.FileMode(0o660)
	if readOnly {
		mask = 0o440
	}
	return filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode()&os.ModeSymlink != 0 {
			return nil
		}
		if err := os.Lchown(p, -1, gid); err != nil {
			return err
		}
		m := info.Mode().Perm() | mask
		if info.IsDir() {
			m |= 0o110 | os.ModeSetgid
		}
		return os.Chmod(p, m|info.Mode()&(os.ModeSetuid|os.ModeSticky))
	})
}

// containerMounts resolves a container's volumeMounts to bind mounts,
// shallowest target first so that nested mounts land inside their parents.
func (r *podRunner) containerMounts(c *corev1.Container, vars map[string]string) ([]mountSpec, error) {
	var out []mountSpec
	for _, vm := range c.VolumeMounts {
		r.mu.Lock()
		v, ok := r.volumes[vm.Name]
		r.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("container %s: volumeMount %q names no volume of the pod", c.Name, vm.Name)
		}
		if !filepath.IsAbs(vm.MountPath) {
			return nil, fmt.Errorf("container %s: volumeMount %q: mountPath %q is not absolute", c.Name, vm.Name, vm.MountPath)
		}
		if vm.MountPropagation != nil && *vm.MountPropagation == corev1.MountPropagationBidirectional {
			return nil, fmt.Errorf("container %s: volumeMount %q: Bidirectional mount propagation is not supported by the process kubelet", c.Name, vm.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, vars)
		}
		source := v.path
		if sub != "" {
			clean := filepath.Clean(sub)
			if filepath.IsAbs(sub) || clean == ".." || strings.HasPrefix(clean, "../") {
				return nil, fmt.Errorf("container %s: volumeMount %q: subPath %q must be a relative path within the volume", c.Name, vm.Name, sub)
			}
			source = filepath.Join(v.path, clean)
			if _, err := os.Lstat(source); errors.Is(err, os.ErrNotExist) && !v.readOnly {
				// The kubelet creates a missing subPath directory.
				if err := os.MkdirAll(source, 0o755); err != nil {
					return nil, err
				}
				if err := r.applyFSGroupTo(source, false); err != nil && v.ownership {
					return nil, err
				}
			}
			// A subPath is resolved once, at mount time (the kubelet's
			// subPath mounts do not follow later updates either).
			resolved, err := filepath.EvalSymlinks(source)
			if err != nil {
				return nil, fmt.Errorf("container %s: volumeMount %q: subPath %q: %w", c.Name, vm.Name, sub, err)
			}
			if resolved != v.path && !strings.HasPrefix(resolved, v.path+"/") {
				return nil, fmt.Errorf("container %s: volumeMount %q: subPath %q leaves the volume", c.Name, vm.Name, sub)
			}
			source = resolved
		}
		st, err := os.Stat(source)
		if err != nil {
			return nil, fmt.Errorf("container %s: volumeMount %q: %w", c.Name, vm.Name, err)
		}
		out = append(out, mountSpec{source: source, target: filepath.Clean(vm.MountPath), dir: st.IsDir(), readOnly: vm.ReadOnly || v.readOnly})
	}
	// Parents before children; but a mount over a directory holding the
	// agent's pod directory (an emptyDir at /tmp while the cluster's state
	// lives in /tmp) hides every source below it, so such mounts go last.
	shadows := func(m mountSpec) bool { return strings.HasPrefix(r.dir+"/", strings.TrimSuffix(m.target, "/")+"/") }
	sort.SliceStable(out, func(i, j int) bool {
		if si, sj := shadows(out[i]), shadows(out[j]); si != sj {
			return sj
		}
		return strings.Count(out[i].target, "/") < strings.Count(out[j].target, "/")
	})
	return out, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// mountsServiceAccount reports whether some container mounts a volume at
// ServiceAccountDir (the ServiceAccount admission plugin's projected
// kube-api-access volume); without one, an automounting pod gets the
// agent's own service-account files there.
func mountsServiceAccount(pod *corev1.Pod) bool {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			for _, vm := range c.VolumeMounts {
				if filepath.Clean(vm.MountPath) == ServiceAccountDir {
					return true
				}
			}
		}
	}
	return false
}
