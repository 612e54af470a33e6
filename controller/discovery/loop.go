package discovery

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"

	"konductor.dev/controller/kongsync"
)

// Pusher receives the discovered replicas.
type Pusher interface {
	SetTargets([]kongsync.Target)
}

// Suspecter is a Pusher that can look at one replica at once
// (kongsync.Syncer.Suspect). A DB-mode pusher is not one: its Kongs share
// a database and lose nothing when they restart.
type Suspecter interface {
	Suspect(name string)
}

// Loop keeps a Pusher's targets equal to the Kong replicas listed in the
// EndpointSlices of the Kong admin Service (gateway discovery). A replica
// whose endpoint flips between ready and not ready while keeping its
// address is a Kong that stopped or started in place: a Suspecter is told
// to look at it at once rather than at its next poll.
type Loop struct {
	// Service is the admin Service's name: only slices labelled with it
	// (kubernetes.io/service-name) count.
	Service string
	// PortNames are tried in order (--kong-admin-svc-port-names); the
	// first one the slices carry is used, https when it ends in "tls".
	PortNames []string
	// Slices lists the EndpointSlices the informer holds.
	Slices func() []*discoveryv1.EndpointSlice
	Pusher Pusher
	Logger *slog.Logger
}

// Run looks again at every value on kicks while ready is true, until ctx
// is done. The caller kicks once more when ready turns true.
func (l *Loop) Run(ctx context.Context, kicks <-chan struct{}, ready func() bool) {
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var last []kongsync.Target
	var lastReplicas []Replica
	for {
		select {
		case <-ctx.Done():
			return
		case <-kicks:
		}
		if !ready() {
			continue
		}
		replicas := l.replicas(l.Slices())
		targets := make([]kongsync.Target, len(replicas))
		for i, r := range replicas {
			targets[i] = r.Target
		}
		if !slices.Equal(targets, last) {
			log.Info("Kong replicas discovered", "count", len(targets), "targets", describe(targets))
			l.Pusher.SetTargets(targets)
			last = targets
		}
		if s, ok := l.Pusher.(Suspecter); ok {
			for _, name := range ReadinessFlips(lastReplicas, replicas) {
				log.Debug("Kong replica readiness changed; checking it now", "target", name)
				s.Suspect(name)
			}
		}
		lastReplicas = replicas
	}
}

// replicas reads the slices of the admin Service with the first of
// PortNames they carry.
func (l *Loop) replicas(eps []*discoveryv1.EndpointSlice) []Replica {
	own := eps[:0:0]
	for _, es := range eps {
		if es.Labels[discoveryv1.LabelServiceName] == l.Service {
			own = append(own, es)
		}
	}
	for _, name := range l.PortNames {
		scheme := "http"
		if strings.HasSuffix(name, "tls") {
			scheme = "https"
		}
		if rs := Replicas(own, name, scheme); len(rs) > 0 {
			return rs
		}
	}
	return nil
}

func describe(ts []kongsync.Target) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.Name + "=" + t.URL
	}
	return strings.Join(parts, ",")
}
