package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

// Security context, as the process kubelet honours it. Each container runs
// through setpriv after its mounts are in place:
//
//   - runAsUser, runAsGroup (container level wins over pod level; unset
//     means uid/gid 0, the user of every mapped image), supplementalGroups
//     and fsGroup as the supplementary groups;
//   - runAsNonRoot: a container that would run as uid 0 is refused with the
//     kubelet's CreateContainerConfigError message;
//   - allowPrivilegeEscalation false: no_new_privs;
//   - capabilities: the container runtimes' default set, minus drop, plus
//     add (privileged keeps all); non-root processes get the added ones as
//     ambient capabilities;
//   - readOnlyRootFilesystem: the root mount is remounted read-only in the
//     container's mount namespace (a read-only bind of "/"); mounts below it
//     that are separate filesystems (/proc, /dev, /sys, /run, ...) keep their
//     flags, and volumes are mounted writable or not by their own settings;
//   - seccompProfile and appArmorProfile RuntimeDefault or Unconfined: this
//     runtime's default is no profile, so both run unconfined; Localhost
//     profiles are refused;
//   - seLinuxOptions: ignored as on any host without SELinux.
//
// procMount other than Default, hostUsers false, Windows options with a
// host process, and pod sysctls are refused with an error naming the field.

// defaultCapabilities is the set container runtimes (containerd, CRI-O)
// give a container that is not privileged.
var defaultCapabilities = []string{
	"chown", "dac_override", "fsetid", "fowner", "mknod", "net_raw", "setgid", "setuid",
	"setfcap", "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write",
}

// identity is what a container's process runs as.
type identity struct {
	uid, gid     int64
	groups       []int64
	noNewPrivs   bool
	privileged   bool
	bounding     []string // capability bounding set (lower-case names without CAP_)
	ambient      []string
	readOnlyRoot bool
}

// formatPod is the kubelet's format.Pod: name_namespace(uid).
func formatPod(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// containerIdentity merges the pod's and the container's security
// contexts. Errors are CreateContainerConfigError material.
func containerIdentity(pod *corev1.Pod, c *corev1.Container) (identity, error) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	id := identity{}
	var uidSet bool
	switch {
	case csc.RunAsUser != nil:
		id.uid, uidSet = *csc.RunAsUser, true
	case psc.RunAsUser != nil:
		id.uid, uidSet = *psc.RunAsUser, true
	}
	switch {
	case csc.RunAsGroup != nil:
		id.gid = *csc.RunAsGroup
	case psc.RunAsGroup != nil:
		id.gid = *psc.RunAsGroup
	}
	nonRoot := psc.RunAsNonRoot
	if csc.RunAsNonRoot != nil {
		nonRoot = csc.RunAsNonRoot
	}
	if nonRoot != nil && *nonRoot && id.uid == 0 {
		if uidSet {
			return id, fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", formatPod(pod), c.Name)
		}
		return id, fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", formatPod(pod), c.Name)
	}
	if psc.FSGroup != nil {
		id.groups = append(id.groups, *psc.FSGroup)
	}
	for _, g := range psc.SupplementalGroups {
		if !slices.Contains(id.groups, g) {
			id.groups = append(id.groups, g)
		}
	}

	field := func(name string) string { return fmt.Sprintf("container %s: securityContext.%s", c.Name, name) }
	podField := func(name string) string { return "pod securityContext." + name }
	for _, p := range []struct {
		sp    *corev1.SeccompProfile
		field string
	}{{psc.SeccompProfile, podField("seccompProfile")}, {csc.SeccompProfile, field("seccompProfile")}} {
		if p.sp != nil && p.sp.Type == corev1.SeccompProfileTypeLocalhost {
			return id, fmt.Errorf("%s: Localhost profiles are not supported by the process kubelet (RuntimeDefault and Unconfined are)", p.field)
		}
	}
	for _, p := range []struct {
		ap    *corev1.AppArmorProfile
		field string
	}{{psc.AppArmorProfile, podField("appArmorProfile")}, {csc.AppArmorProfile, field("appArmorProfile")}} {
		if p.ap != nil && p.ap.Type == corev1.AppArmorProfileTypeLocalhost {
			return id, fmt.Errorf("%s: Localhost profiles are not supported by the process kubelet", p.field)
		}
	}
	if len(psc.Sysctls) > 0 {
		return id, fmt.Errorf("%s: sysctls are not supported by the process kubelet", podField("sysctls"))
	}
	if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
		return id, fmt.Errorf("pod spec.hostUsers: false (user namespaces) is not supported by the process kubelet")
	}
	if csc.ProcMount != nil && *csc.ProcMount != corev1.DefaultProcMount {
		return id, fmt.Errorf("%s: %s is not supported by the process kubelet", field("procMount"), *csc.ProcMount)
	}
	for _, w := range []*corev1.WindowsSecurityContextOptions{psc.WindowsOptions, csc.WindowsOptions} {
		if w != nil && w.HostProcess != nil && *w.HostProcess {
			return id, fmt.Errorf("container %s: windowsOptions.hostProcess is not supported on Linux", c.Name)
		}
	}

	id.privileged = csc.Privileged != nil && *csc.Privileged
	id.noNewPrivs = csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation && !id.privileged
	id.readOnlyRoot = csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem
	if !id.privileged {
		caps := slices.Clone(defaultCapabilities)
		var add []string
		if csc.Capabilities != nil {
			for _, d := range csc.Capabilities.Drop {
				name := capName(d)
				if name == "all" {
					caps = nil
					continue
				}
				caps = slices.DeleteFunc(caps, func(c string) bool { return c == name })
			}
			for _, a := range csc.Capabilities.Add {
				name := capName(a)
				if name == "all" {
					return id, fmt.Errorf("%s: add ALL is only possible with privileged: true here", field("capabilities"))
				}
				add = append(add, name)
				if !slices.Contains(caps, name) {
					caps = append(caps, name)
				}
			}
		}
		id.bounding = caps
		if id.uid != 0 {
			id.ambient = add
		}
	}
	return id, nil
}

func capName(c corev1.Capability) string {
	return strings.ToLower(strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_"))
}

// setprivArgs is the setpriv command line that switches to id and then
// executes argv.
func (id identity) setprivArgs(argv []string) []string {
	args := []string{"setpriv",
		"--reuid=" + strconv.FormatInt(id.uid, 10), "--regid=" + strconv.FormatInt(id.gid, 10)}
	if len(id.groups) == 0 {
		args = append(args, "--clear-groups")
	} else {
		gs := make([]string, len(id.groups))
		for i, g := range id.groups {
			gs[i] = strconv.FormatInt(g, 10)
		}
		args = append(args, "--groups="+strings.Join(gs, ","))
	}
	if id.noNewPrivs {
		args = append(args, "--no-new-privs")
	}
	if !id.privileged {
		args = append(args, "--bounding-set="+capList(id.bounding))
		args = append(args, "--inh-caps="+capList(id.ambient))
		if len(id.ambient) > 0 {
			args = append(args, "--ambient-caps="+capList(id.ambient))
		}
	}
	return append(append(args, "--"), argv...)
}

// capList is setpriv's syntax for exactly the capabilities given.
func capList(caps []string) string {
	out := "-all"
	for _, c := range caps {
		out += ",+" + c
	}
	return out
}

// checkRunnable reports why a process with uid and gids could not execute
// path: a directory on the way it may not search, or the file itself.
func checkRunnable(path string, uid int64, gids []int64) error {
	if uid == 0 {
		return nil
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	for _, p := range []string{path, resolved} {
		dir := filepath.Dir(p)
		for {
			if err := permitted(dir, uid, gids, 0o1); err != nil {
				return fmt.Errorf("%s cannot be executed by uid %d: %w (put the binaries in a directory every user can search)", path, uid, err)
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if err := permitted(resolved, uid, gids, 0o1); err != nil {
		return fmt.Errorf("%s cannot be executed by uid %d: %w", path, uid, err)
	}
	return nil
}

// permitted checks one permission triplet bit (1 execute/search) on p for
// uid and gids.
func permitted(p string, uid int64, gids []int64, bit os.FileMode) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	mode := st.Mode().Perm()
	switch {
	case int64(sys.Uid) == uid:
		if mode&(bit<<6) != 0 {
			return nil
		}
	case slices.Contains(gids, int64(sys.Gid)):
		if mode&(bit<<3) != 0 {
			return nil
		}
	default:
		if mode&bit != 0 {
			return nil
		}
	}
	return fmt.Errorf("%s has mode %s (owner %d, group %d)", p, mode, sys.Uid, sys.Gid)
}
