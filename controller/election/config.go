package election

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"konductor.dev/controller/fence"
)

// Lock types accepted in Config.LockType.
const (
	LockTypeConfigMaps = "configmaps"
	LockTypeLeases     = "leases"
)

// Defaults from the seed: the lock is named "<election-id>-<ingress-class>".
const (
	DefaultElectionID   = "ingress-controller-leader"
	DefaultIngressClass = "kong"
)

// Config describes one candidate in one election.
type Config struct {
	// Client reaches the API server. Only the lock object is touched.
	Client kubernetes.Interface
	// Namespace and Name locate the lock object; see LockName.
	Namespace string
	Name      string
	// LockType is LockTypeConfigMaps (the default when empty) or LockTypeLeases.
	LockType string
	// Identity names this candidate; it must be unique per process (see
	// DefaultIdentity), because holding the lock is decided by comparing it.
	Identity string

	// LeaseDuration is how long others wait, from observing the lock's last
	// change, before they may take it. It is written into the record in
	// whole seconds, so it must be a whole number of seconds.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader may write after the start of its
	// last successful renewal. It must be shorter than LeaseDuration; the
	// difference is the safety margin (see the package documentation).
	RenewDeadline time.Duration
	// RetryPeriod is the interval between renewals, and between polls of
	// the lock by candidates.
	RetryPeriod time.Duration

	// PodEvidence lets a candidate take the lock before the lease runs
	// out when the kubelet reports the holder's own container terminated
	// (see the package documentation); it needs get and watch on pods in
	// Namespace. As leader, the elector publishes Self beside the record.
	PodEvidence bool
	// Self is this process in its Pod (see ThisProcess); nil publishes
	// nothing, so standbys wait for the lease when this replica dies.
	Self *Self

	// Registerer receives the metrics; nil means no metrics.
	Registerer prometheus.Registerer
	// Logger receives the election's log lines; nil discards them.
	Logger *slog.Logger

	// OnNewTerm is called once at the start of each term we win, on the
	// election loop: it must return quickly (e.g. trigger a push and return).
	OnNewTerm func(fence.Term)
	// OnStoppedLeading is called once when a term of ours ends, whether it
	// was lost, lapsed or released. Same rules as OnNewTerm.
	OnStoppedLeading func()
	// BeforeRelease is called on graceful shutdown after Permit has stopped
	// granting and before the lock is released. It must stop writes and wait
	// for in-flight ones, and return when ctx is done (at most RenewDeadline).
	BeforeRelease func(ctx context.Context)
}

// LockName returns the lock object's name, "<election-id>-<ingress-class>";
// empty arguments take the defaults, so LockName("", "") is
// "ingress-controller-leader-kong".
func LockName(electionID, ingressClass string) string {
	if electionID == "" {
		electionID = DefaultElectionID
	}
	if ingressClass == "" {
		ingressClass = DefaultIngressClass
	}
	return electionID + "-" + ingressClass
}

// DefaultIdentity returns podName (or the host name when podName is empty)
// followed by "_" and a random suffix, so that a restarted pod with the same
// name is a new candidate and never mistakes its predecessor's term for its
// own.
func DefaultIdentity(podName string) string {
	if podName == "" {
		podName, _ = os.Hostname()
	}
	if podName == "" {
		podName = "konductor"
	}
	var b [8]byte
	// crypto/rand.Read never fails on supported platforms.
	_, _ = rand.Read(b[:])
	return podName + "_" + hex.EncodeToString(b[:])
}

// validate checks c and fills defaults; errors name the offending field.
func (c *Config) validate() error {
	if c.Client == nil {
		return fmt.Errorf("election: Config.Client is required")
	}
	if c.Namespace == "" {
		return fmt.Errorf("election: Config.Namespace is required")
	}
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return fmt.Errorf("election: Config.Namespace %q is not a valid namespace: %s", c.Namespace, strings.Join(errs, "; "))
	}
	if c.Name == "" {
		return fmt.Errorf("election: Config.Name (the lock object's name) is required; see LockName")
	}
	if errs := validation.IsDNS1123Subdomain(c.Name); len(errs) > 0 {
		return fmt.Errorf("election: Config.Name %q is not a valid object name: %s", c.Name, strings.Join(errs, "; "))
	}
	switch c.LockType {
	case "":
		c.LockType = LockTypeConfigMaps
	case LockTypeConfigMaps, LockTypeLeases:
	default:
		return fmt.Errorf("election: Config.LockType %q is not supported; use %q or %q", c.LockType, LockTypeConfigMaps, LockTypeLeases)
	}
	if c.Identity == "" {
		return fmt.Errorf("election: Config.Identity is required; see DefaultIdentity")
	}
	if c.RetryPeriod <= 0 {
		return fmt.Errorf("election: Config.RetryPeriod must be positive, got %v", c.RetryPeriod)
	}
	if c.RenewDeadline <= c.RetryPeriod {
		return fmt.Errorf("election: Config.RenewDeadline (%v) must be greater than RetryPeriod (%v)", c.RenewDeadline, c.RetryPeriod)
	}
	if c.LeaseDuration <= c.RenewDeadline {
		return fmt.Errorf("election: Config.LeaseDuration (%v) must be greater than RenewDeadline (%v)", c.LeaseDuration, c.RenewDeadline)
	}
	if c.LeaseDuration%time.Second != 0 {
		// Others read the duration from the record in whole seconds; a
		// fraction would be cut off and shrink the margin we rely on.
		return fmt.Errorf("election: Config.LeaseDuration (%v) must be a whole number of seconds", c.LeaseDuration)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
