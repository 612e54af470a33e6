// Package options defines konductor's command-line flags, their environment
// variable twins and their validation.
//
// Every flag --some-flag can also be set with CONTROLLER_SOME_FLAG; a flag
// given on the command line wins over the environment. Flag names follow the
// Kong Ingress Controller wherever the concept is shared, so that existing
// manifests keep working.
package options

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// EnvPrefix prefixes the environment variable of every flag.
const EnvPrefix = "CONTROLLER_"

// inClusterNamespaceFile is where a pod's service account namespace is mounted.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Leader election modes of --leader-elect.
const (
	LeaderElectAuto  = "auto"
	LeaderElectTrue  = "true"
	LeaderElectFalse = "false"
)

// Lock kinds of --election-lock.
const (
	LockConfigMaps = "configmaps"
	LockLeases     = "leases"
)

// Options holds every setting of the controller.
type Options struct {
	Kubeconfig      string
	APIServerQPS    float32
	APIServerBurst  int
	IngressClass    string
	WatchNamespaces []string

	KongAdminURLs          []string
	KongAdminSvc           string
	KongAdminSvcPortNames  []string
	KongAdminTLSSkipVerify bool
	KongAdminCACertFile    string
	KongAdminTLSClientCert string
	KongAdminTLSClientKey  string
	KongAdminTLSServerName string
	KongAdminToken         string
	KongAdminTimeout       time.Duration

	UpdateStatus         bool
	PublishService       string
	PublishStatusAddress []string

	ElectionID            string
	ElectionNamespace     string
	ElectionLock          string
	ElectionLeaseDuration time.Duration
	ElectionRenewDeadline time.Duration
	ElectionRetryPeriod   time.Duration
	ElectionPodEvidence   bool
	LeaderElect           string

	SyncDebounce           time.Duration
	ProxySyncSeconds       float64
	KongDriftCheckInterval time.Duration
	// KongLivenessCheckInterval is the period of the writer's GET /status
	// poll of each Kong (kongsync.Options.LivenessInterval); 0 turns it off.
	KongLivenessCheckInterval time.Duration

	MetricsBindAddress     string
	HealthProbeBindAddress string
	Profiling              bool
	LogLevel               string
	LogFormat              string
}

// Env is the process environment the options read besides flags. Tests
// replace it; Parse uses the real one when a field is nil.
type Env struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
	// Output receives --help; nil means standard output.
	Output io.Writer
}

// Default returns the options with every default applied.
func Default() *Options {
	o := &Options{}
	_ = o.FlagSet() // registers defaults into o
	return o
}

// FlagSet returns a flag set bound to o, with o's fields set to the defaults.
func (o *Options) FlagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("konductor", pflag.ContinueOnError)
	fs.SortFlags = false

	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Path to a kubeconfig file. Empty: in-cluster configuration, else $KUBECONFIG or ~/.kube/config.")
	fs.Float32Var(&o.APIServerQPS, "apiserver-qps", 100, "Sustained requests per second to the Kubernetes API server (client-go's default of 5 would take over half an hour to write the status of 10k Ingresses).")
	fs.IntVar(&o.APIServerBurst, "apiserver-burst", 300, "Requests to the Kubernetes API server allowed in a burst above --apiserver-qps.")
	fs.StringVar(&o.IngressClass, "ingress-class", "kong", "Ingress class this controller serves: Ingresses whose spec.ingressClassName or kubernetes.io/ingress.class annotation equals it, and class-less Ingresses when the IngressClass of this name is the cluster default.")
	fs.StringSliceVar(&o.WatchNamespaces, "watch-namespace", nil, "Comma-separated namespaces to watch for Ingresses, Services, EndpointSlices and Secrets. Empty: all namespaces.")

	fs.StringSliceVar(&o.KongAdminURLs, "kong-admin-url", []string{"http://localhost:8001"}, "Kong Admin API URL; repeat the flag (or separate with commas) to configure several Kong instances. Ignored with --kong-admin-svc.")
	fs.StringVar(&o.KongAdminSvc, "kong-admin-svc", "", "Gateway discovery: namespace/name of the Kong Admin API Service whose EndpointSlices list the Kong instances to configure.")
	fs.StringSliceVar(&o.KongAdminSvcPortNames, "kong-admin-svc-port-names", []string{"admin", "admin-tls", "kong-admin", "kong-admin-tls"}, "Names of the Admin API port in the EndpointSlices of --kong-admin-svc, in order of preference; names ending in 'tls' use https.")
	fs.BoolVar(&o.KongAdminTLSSkipVerify, "kong-admin-tls-skip-verify", false, "Do not verify the Kong Admin API's TLS certificate.")
	fs.StringVar(&o.KongAdminCACertFile, "kong-admin-ca-cert-file", "", "PEM file of the CA that signs the Kong Admin API's certificate.")
	fs.StringVar(&o.KongAdminTLSClientCert, "kong-admin-tls-client-cert-file", "", "PEM client certificate for mTLS to the Kong Admin API (needs --kong-admin-tls-client-key-file).")
	fs.StringVar(&o.KongAdminTLSClientKey, "kong-admin-tls-client-key-file", "", "PEM private key of --kong-admin-tls-client-cert-file.")
	fs.StringVar(&o.KongAdminTLSServerName, "kong-admin-tls-server-name", "", "Server name expected in the Kong Admin API's certificate.")
	fs.StringVar(&o.KongAdminToken, "kong-admin-token", "", "Token sent as the Kong-Admin-Token header.")
	fs.DurationVar(&o.KongAdminTimeout, "kong-admin-request-timeout", 30*time.Second, "Timeout of one Admin API request.")

	fs.BoolVar(&o.UpdateStatus, "update-status", true, "Write status.loadBalancer of served Ingresses (by the elected replica only).")
	fs.StringVar(&o.PublishService, "publish-service", "", "namespace/name of the Service whose LoadBalancer addresses (else ClusterIP) are written into Ingress status.")
	fs.StringSliceVar(&o.PublishStatusAddress, "publish-status-address", nil, "Comma-separated IPs or hostnames written into Ingress status; when set they are used instead of --publish-service.")

	fs.StringVar(&o.ElectionID, "election-id", "ingress-controller-leader", "Leader election lock name prefix; the lock is named <election-id>-<ingress-class>.")
	fs.StringVar(&o.ElectionNamespace, "election-namespace", "", "Namespace of the leader election lock. Empty: $POD_NAMESPACE, else the in-cluster service account namespace, else the kubeconfig context's namespace.")
	fs.StringVar(&o.ElectionLock, "election-lock", LockConfigMaps, "Kind of leader election lock: configmaps or leases.")
	fs.DurationVar(&o.ElectionLeaseDuration, "election-lease-duration", 15*time.Second, "How long a lease is valid without renewal; standbys wait this long for a leader that vanished without releasing.")
	fs.DurationVar(&o.ElectionRenewDeadline, "election-renew-deadline", 10*time.Second, "The leader stops writing when it has not renewed for this long; must be below --election-lease-duration.")
	fs.DurationVar(&o.ElectionRetryPeriod, "election-retry-period", 2*time.Second, "Interval between lock acquire/renew attempts; must be below --election-renew-deadline.")
	fs.BoolVar(&o.ElectionPodEvidence, "election-pod-evidence", true, "Take the lock before the lease runs out when the kubelet reports the holder's own container terminated (a crashed, OOM-killed or evicted leader); a leader that is only unreachable still waits for the lease. Needs get and watch on pods in the election namespace; the leader publishes its container (from $POD_NAME, $POD_NAMESPACE, $CONTAINER_NAME) beside the lock.")
	fs.StringVar(&o.LeaderElect, "leader-elect", LeaderElectAuto, "Gate Kong writes by leader election: auto (on in DB mode and with --kong-admin-svc, off for DB-less sidecars), true or false. Ingress status is always written by the elected replica only.")

	fs.DurationVar(&o.SyncDebounce, "sync-debounce", 100*time.Millisecond, "Quiet time after a Kubernetes change before translating, so that a burst of changes becomes one push.")
	fs.Float64Var(&o.ProxySyncSeconds, "proxy-sync-seconds", 0.3, "Minimum interval between two translations pushed to Kong, in seconds.")
	fs.DurationVar(&o.KongDriftCheckInterval, "kong-drift-check-interval", 10*time.Second, "Interval at which each Kong's configuration hash is checked and a stale or emptied Kong is configured again.")
	fs.DurationVar(&o.KongLivenessCheckInterval, "kong-liveness-check-interval", 500*time.Millisecond, "Interval of the writing replica's GET /status poll of each Kong, which configures a Kong restarted in place within one interval of its answering (one small request per Kong per interval; standbys send none); 0 turns it off and leaves restarts to the drift check.")

	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":10255", "Address of the Prometheus /metrics listener; empty disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":10254", "Address of the /healthz and /readyz listener; empty disables it.")
	fs.BoolVar(&o.Profiling, "profiling", false, "Serve Go's pprof profiles at /debug/pprof/ on the --metrics-bind-address listener.")
	fs.StringVar(&o.LogLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	fs.StringVar(&o.LogFormat, "log-format", "json", "Log format: json or text.")
	return fs
}

// EnvName returns the environment variable that sets a flag.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ErrHelp is returned by Parse when --help was asked for; the usage text has
// then been written to the flag set's output.
var ErrHelp = pflag.ErrHelp

// Parse reads args (without the program name) and env into validated options.
func Parse(args []string, env Env) (*Options, error) {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.ReadFile == nil {
		env.ReadFile = os.ReadFile
	}
	if env.Output == nil {
		env.Output = os.Stdout
	}
	o := &Options{}
	fs := o.FlagSet()
	// Errors are returned, not printed; usage is printed for --help only.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, ErrHelp) {
			fmt.Fprintf(env.Output, "konductor: a highly available Kong ingress controller.\n\nUsage: konductor [flags]\n\nEvery flag can also be set by an environment variable, e.g. --ingress-class by %s; the flag wins.\n\nFlags:\n%s", EnvName("ingress-class"), fs.FlagUsages())
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: konductor takes flags only", fs.Arg(0))
	}
	var envErr error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || envErr != nil {
			return
		}
		name := EnvName(f.Name)
		if v := env.Getenv(name); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("--%s from %s: %w", f.Name, name, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if o.ElectionNamespace == "" {
		o.ElectionNamespace = env.Getenv("POD_NAMESPACE")
	}
	if o.ElectionNamespace == "" {
		if b, err := env.ReadFile(inClusterNamespaceFile); err == nil {
			o.ElectionNamespace = strings.TrimSpace(string(b))
		}
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// Validate checks the options; every error names the flag at fault.
func (o *Options) Validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if o.APIServerQPS <= 0 {
		bad("apiserver-qps", "must be positive, got %g", o.APIServerQPS)
	}
	if o.APIServerBurst < 1 {
		bad("apiserver-burst", "must be at least 1, got %d", o.APIServerBurst)
	}
	if o.IngressClass == "" {
		bad("ingress-class", "must not be empty")
	}
	for _, ns := range o.WatchNamespaces {
		if strings.TrimSpace(ns) == "" {
			bad("watch-namespace", "empty namespace in list %q", strings.Join(o.WatchNamespaces, ","))
		}
	}
	if o.KongAdminSvc == "" {
		if len(o.KongAdminURLs) == 0 {
			bad("kong-admin-url", "at least one Kong Admin API URL is needed (or use --kong-admin-svc)")
		}
		for _, u := range o.KongAdminURLs {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				bad("kong-admin-url", "%q is not an http(s) URL with a host", u)
			}
		}
	} else if _, _, err := SplitNamespacedName(o.KongAdminSvc); err != nil {
		bad("kong-admin-svc", "%v", err)
	}
	if o.KongAdminSvc != "" && len(o.KongAdminSvcPortNames) == 0 {
		bad("kong-admin-svc-port-names", "at least one port name is needed with --kong-admin-svc")
	}
	if (o.KongAdminTLSClientCert == "") != (o.KongAdminTLSClientKey == "") {
		bad("kong-admin-tls-client-cert-file", "--kong-admin-tls-client-cert-file and --kong-admin-tls-client-key-file go together")
	}
	if o.KongAdminTimeout <= 0 {
		bad("kong-admin-request-timeout", "must be positive, got %s", o.KongAdminTimeout)
	}
	if o.PublishService != "" {
		if _, _, err := SplitNamespacedName(o.PublishService); err != nil {
			bad("publish-service", "%v", err)
		}
	}
	for _, a := range o.PublishStatusAddress {
		if strings.TrimSpace(a) == "" {
			bad("publish-status-address", "empty address in list")
		}
	}
	if o.ElectionID == "" {
		bad("election-id", "must not be empty")
	}
	if o.ElectionLock != LockConfigMaps && o.ElectionLock != LockLeases {
		bad("election-lock", "must be %s or %s, got %q", LockConfigMaps, LockLeases, o.ElectionLock)
	}
	if o.ElectionLeaseDuration <= 0 || o.ElectionLeaseDuration%time.Second != 0 {
		// The lock record stores the duration in whole seconds.
		bad("election-lease-duration", "must be a positive whole number of seconds, got %s", o.ElectionLeaseDuration)
	}
	if o.ElectionRenewDeadline <= 0 || o.ElectionRenewDeadline >= o.ElectionLeaseDuration {
		bad("election-renew-deadline", "must be positive and below --election-lease-duration (%s), got %s", o.ElectionLeaseDuration, o.ElectionRenewDeadline)
	}
	if o.ElectionRetryPeriod <= 0 || o.ElectionRetryPeriod >= o.ElectionRenewDeadline {
		bad("election-retry-period", "must be positive and below --election-renew-deadline (%s), got %s", o.ElectionRenewDeadline, o.ElectionRetryPeriod)
	}
	switch o.LeaderElect {
	case LeaderElectAuto, LeaderElectTrue, LeaderElectFalse:
	default:
		bad("leader-elect", "must be auto, true or false, got %q", o.LeaderElect)
	}
	if o.SyncDebounce < 0 {
		bad("sync-debounce", "must not be negative, got %s", o.SyncDebounce)
	}
	if o.ProxySyncSeconds < 0 {
		bad("proxy-sync-seconds", "must not be negative, got %g", o.ProxySyncSeconds)
	}
	if o.KongDriftCheckInterval <= 0 {
		bad("kong-drift-check-interval", "must be positive, got %s", o.KongDriftCheckInterval)
	}
	if o.KongLivenessCheckInterval < 0 {
		bad("kong-liveness-check-interval", "must not be negative (0 turns the poll off), got %s", o.KongLivenessCheckInterval)
	}
	for _, l := range []struct{ flag, addr string }{{"metrics-bind-address", o.MetricsBindAddress}, {"health-probe-bind-address", o.HealthProbeBindAddress}} {
		if l.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			bad(l.flag, "%q is not host:port: %v", l.addr, err)
		}
	}
	switch strings.ToLower(o.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "must be debug, info, warn or error, got %q", o.LogLevel)
	}
	if o.LogFormat != "json" && o.LogFormat != "text" {
		bad("log-format", "must be json or text, got %q", o.LogFormat)
	}
	return errors.Join(errs...)
}

// ElectionLockName is the name of the leader election lock object.
func (o *Options) ElectionLockName() string {
	return o.ElectionID + "-" + o.IngressClass
}

// ProxySyncInterval is --proxy-sync-seconds as a duration.
func (o *Options) ProxySyncInterval() time.Duration {
	return time.Duration(o.ProxySyncSeconds * float64(time.Second))
}

// SplitNamespacedName splits "namespace/name".
func SplitNamespacedName(s string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(s, "/")
	if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", fmt.Errorf("%q is not namespace/name", s)
	}
	return ns, n, nil
}
