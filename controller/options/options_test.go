package options

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string, files map[string]string) Env {
	return Env{
		Getenv: func(k string) string { return vars[k] },
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, fs.ErrNotExist
		},
	}
}

func TestDefaults(t *testing.T) {
	o, err := Parse(nil, env(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"IngressClass":           "kong",
		"KongAdminURLs":          []string{"http://localhost:8001"},
		"KongAdminSvcPortNames":  []string{"admin", "admin-tls", "kong-admin", "kong-admin-tls"},
		"ElectionID":             "ingress-controller-leader",
		"ElectionLock":           "configmaps",
		"ElectionLeaseDuration":  15 * time.Second,
		"ElectionRenewDeadline":  10 * time.Second,
		"ElectionRetryPeriod":    2 * time.Second,
		"ElectionPodEvidence":    true,
		"LeaderElect":            "auto",
		"MetricsBindAddress":     ":10255",
		"HealthProbeBindAddress": ":10254",
		"UpdateStatus":           true,
		"ElectionNamespace":      "",
		"APIServerQPS":           float32(100),
		"APIServerBurst":         300,
	}
	v := reflect.ValueOf(o).Elem()
	for field, w := range want {
		if got := v.FieldByName(field).Interface(); !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %v, want %v", field, got, w)
		}
	}
	if o.ElectionLockName() != "ingress-controller-leader-kong" {
		t.Errorf("lock name %q", o.ElectionLockName())
	}
	if o.ProxySyncInterval() != 300*time.Millisecond {
		t.Errorf("proxy sync interval %s", o.ProxySyncInterval())
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		vars  map[string]string
		files map[string]string
		check func(*Options) string
	}{
		{"env sets a flag", nil, map[string]string{"CONTROLLER_INGRESS_CLASS": "internal"}, nil,
			func(o *Options) string { return eq(o.IngressClass, "internal") }},
		{"flag beats env", []string{"--ingress-class=public"}, map[string]string{"CONTROLLER_INGRESS_CLASS": "internal"}, nil,
			func(o *Options) string { return eq(o.IngressClass, "public") }},
		{"env list is comma separated", nil, map[string]string{"CONTROLLER_KONG_ADMIN_URL": "http://a:8001,https://b:8444"}, nil,
			func(o *Options) string { return eq(strings.Join(o.KongAdminURLs, " "), "http://a:8001 https://b:8444") }},
		{"repeated flag", []string{"--kong-admin-url=http://a:8001", "--kong-admin-url=http://b:8001"}, nil, nil,
			func(o *Options) string { return eq(strings.Join(o.KongAdminURLs, " "), "http://a:8001 http://b:8001") }},
		{"env duration", nil, map[string]string{"CONTROLLER_ELECTION_RETRY_PERIOD": "1s"}, nil,
			func(o *Options) string { return eq(o.ElectionRetryPeriod.String(), "1s") }},
		{"env bool", nil, map[string]string{"CONTROLLER_KONG_ADMIN_TLS_SKIP_VERIFY": "true"}, nil,
			func(o *Options) string { return eq(o.KongAdminTLSSkipVerify, true) }},
		{"pod evidence off by env", nil, map[string]string{"CONTROLLER_ELECTION_POD_EVIDENCE": "false"}, nil,
			func(o *Options) string { return eq(o.ElectionPodEvidence, false) }},
		{"election namespace from POD_NAMESPACE", nil, map[string]string{"POD_NAMESPACE": "kong"}, map[string]string{inClusterNamespaceFile: "other"},
			func(o *Options) string { return eq(o.ElectionNamespace, "kong") }},
		{"election namespace from service account file", nil, nil, map[string]string{inClusterNamespaceFile: "kong-system\n"},
			func(o *Options) string { return eq(o.ElectionNamespace, "kong-system") }},
		{"election namespace flag wins", []string{"--election-namespace=mine"}, map[string]string{"POD_NAMESPACE": "kong"}, nil,
			func(o *Options) string { return eq(o.ElectionNamespace, "mine") }},
		{"discovery needs no URL", []string{"--kong-admin-svc=kong/kong-admin", "--kong-admin-url="}, nil, nil,
			func(o *Options) string { return eq(o.KongAdminSvc, "kong/kong-admin") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Parse(tt.args, env(tt.vars, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(o); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func eq[T comparable](got, want T) string {
	if got != want {
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	return ""
}

func TestValidationNamesTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		vars map[string]string
		flag string
	}{
		{[]string{"--election-renew-deadline=20s"}, nil, "--election-renew-deadline"},
		{[]string{"--election-retry-period=10s"}, nil, "--election-retry-period"},
		{[]string{"--election-lease-duration=0s"}, nil, "--election-lease-duration"},
		{[]string{"--election-lease-duration=15500ms"}, nil, "--election-lease-duration"},
		{[]string{"--election-lock=endpoints"}, nil, "--election-lock"},
		{[]string{"--leader-elect=maybe"}, nil, "--leader-elect"},
		{[]string{"--kong-admin-url=localhost:8001"}, nil, "--kong-admin-url"},
		{[]string{"--kong-admin-url="}, nil, "--kong-admin-url"},
		{[]string{"--kong-admin-svc=kong-admin"}, nil, "--kong-admin-svc"},
		{[]string{"--publish-service=a/b/c"}, nil, "--publish-service"},
		{[]string{"--kong-admin-tls-client-cert-file=c.pem"}, nil, "--kong-admin-tls-client-cert-file"},
		{[]string{"--ingress-class="}, nil, "--ingress-class"},
		{[]string{"--apiserver-qps=0"}, nil, "--apiserver-qps"},
		{[]string{"--apiserver-burst=0"}, nil, "--apiserver-burst"},
		{nil, map[string]string{"CONTROLLER_APISERVER_QPS": "fast"}, "--apiserver-qps"},
		{[]string{"--log-format=xml"}, nil, "--log-format"},
		{[]string{"--log-level=loud"}, nil, "--log-level"},
		{[]string{"--metrics-bind-address=10255"}, nil, "--metrics-bind-address"},
		{[]string{"--proxy-sync-seconds=-1"}, nil, "--proxy-sync-seconds"},
		{[]string{"--kong-drift-check-interval=0s"}, nil, "--kong-drift-check-interval"},
		{[]string{"--kong-liveness-check-interval=-1s"}, nil, "--kong-liveness-check-interval"},
		{nil, map[string]string{"CONTROLLER_SYNC_DEBOUNCE": "soon"}, "--sync-debounce"},
		{nil, map[string]string{"CONTROLLER_ELECTION_RENEW_DEADLINE": "1m"}, "--election-renew-deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.flag+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := Parse(tt.args, env(tt.vars, nil))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.flag) {
				t.Errorf("error %q does not name %s", err, tt.flag)
			}
		})
	}
}

func TestHelpExplainsEveryFlag(t *testing.T) {
	o := &Options{}
	fs := o.FlagSet()
	var out bytes.Buffer
	fs.SetOutput(&out)
	if err := fs.Parse([]string{"--help"}); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--ingress-class string", `(default "kong")`, "--election-lease-duration", "(default 15s)", "--kong-admin-svc-port-names"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestParseHelpWritesUsage(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse([]string{"--help"}, Env{Getenv: func(string) string { return "" }, Output: &out})
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(out.String(), "CONTROLLER_INGRESS_CLASS") || !strings.Contains(out.String(), "--kong-admin-url") {
		t.Errorf("usage %q", out.String())
	}
	out.Reset()
	if _, err := Parse([]string{"--nope"}, Env{Getenv: func(string) string { return "" }, Output: &out}); err == nil || out.Len() != 0 {
		t.Errorf("unknown flag: err %v, output %q", err, out.String())
	}
}

func TestSplitNamespacedName(t *testing.T) {
	for in, ok := range map[string]bool{"a/b": true, "a": false, "/b": false, "a/": false, "a/b/c": false} {
		_, _, err := SplitNamespacedName(in)
		if (err == nil) != ok {
			t.Errorf("%q: err %v", in, err)
		}
	}
}
