package node

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestContainerIdentity(t *testing.T) {
	pod := func(psc *corev1.PodSecurityContext, csc *corev1.SecurityContext) (*corev1.Pod, *corev1.Container) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "u1"},
			Spec: corev1.PodSpec{SecurityContext: psc, Containers: []corev1.Container{{Name: "app", SecurityContext: csc}}}}
		return p, &p.Spec.Containers[0]
	}
	for _, tc := range []struct {
		name    string
		psc     *corev1.PodSecurityContext
		csc     *corev1.SecurityContext
		want    identity
		wantErr string
	}{
		{name: "nothing set runs as root with the default capabilities",
			want: identity{bounding: defaultCapabilities}},
		{name: "container user and group win over the pod's",
			psc:  &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1), RunAsGroup: ptr.To[int64](2), FSGroup: ptr.To[int64](3), SupplementalGroups: []int64{4, 3}},
			csc:  &corev1.SecurityContext{RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65533)},
			want: identity{uid: 65532, gid: 65533, groups: []int64{3, 4}, bounding: defaultCapabilities}},
		{name: "pod-level user applies to the container",
			psc:  &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsNonRoot: ptr.To(true)},
			want: identity{uid: 1000, bounding: defaultCapabilities}},
		{name: "konductor's container context",
			psc: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			csc: &corev1.SecurityContext{RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532), AllowPrivilegeEscalation: ptr.To(false),
				ReadOnlyRootFilesystem: ptr.To(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			want: identity{uid: 65532, gid: 65532, noNewPrivs: true, readOnlyRoot: true}},
		{name: "added capabilities become ambient for non-root",
			csc:  &corev1.SecurityContext{RunAsUser: ptr.To[int64](1000), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}}},
			want: identity{uid: 1000, bounding: []string{"net_bind_service"}, ambient: []string{"net_bind_service"}}},
		{name: "dropping one capability",
			csc:  &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"CAP_NET_RAW"}}},
			want: identity{bounding: slices.DeleteFunc(slices.Clone(defaultCapabilities), func(c string) bool { return c == "net_raw" })}},
		{name: "privileged keeps every capability",
			csc:  &corev1.SecurityContext{Privileged: ptr.To(true), AllowPrivilegeEscalation: ptr.To(true)},
			want: identity{privileged: true}},
		{name: "runAsNonRoot with the image's root user",
			psc:     &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			wantErr: `container has runAsNonRoot and image will run as root (pod: "web-1_shop(u1)", container: app)`},
		{name: "runAsNonRoot with runAsUser 0",
			csc:     &corev1.SecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](0)},
			wantErr: `container's runAsUser breaks non-root policy (pod: "web-1_shop(u1)", container: app)`},
		{name: "container runAsNonRoot false overrides the pod's",
			psc:  &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
			csc:  &corev1.SecurityContext{RunAsNonRoot: ptr.To(false)},
			want: identity{bounding: defaultCapabilities}},
		{name: "Localhost seccomp profile is refused",
			csc:     &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("x.json")}},
			wantErr: "container app: securityContext.seccompProfile: Localhost profiles are not supported by the process kubelet (RuntimeDefault and Unconfined are)"},
		{name: "sysctls are refused",
			psc:     &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}},
			wantErr: "pod securityContext.sysctls: sysctls are not supported by the process kubelet"},
		{name: "unmasked procMount is refused",
			csc:     &corev1.SecurityContext{ProcMount: ptr.To(corev1.UnmaskedProcMount)},
			wantErr: "container app: securityContext.procMount: Unmasked is not supported by the process kubelet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, c := pod(tc.psc, tc.csc)
			got, err := containerIdentity(p, c)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.uid != tc.want.uid || got.gid != tc.want.gid || !slices.Equal(got.groups, tc.want.groups) ||
				got.noNewPrivs != tc.want.noNewPrivs || got.privileged != tc.want.privileged || got.readOnlyRoot != tc.want.readOnlyRoot ||
				!slices.Equal(got.bounding, tc.want.bounding) || !slices.Equal(got.ambient, tc.want.ambient) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSetprivArgs(t *testing.T) {
	id := identity{uid: 65532, gid: 65532, groups: []int64{999}, noNewPrivs: true, bounding: []string{"net_bind_service"}, ambient: []string{"net_bind_service"}}
	want := []string{"setpriv", "--reuid=65532", "--regid=65532", "--groups=999", "--no-new-privs",
		"--bounding-set=-all,+net_bind_service", "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service", "--", "/bin/app", "-v"}
	if got := id.setprivArgs([]string{"/bin/app", "-v"}); !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	root := identity{privileged: true}
	want = []string{"setpriv", "--reuid=0", "--regid=0", "--clear-groups", "--", "app"}
	if got := root.setprivArgs([]string{"app"}); !slices.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}
