package translate

import (
	"runtime"
	"strconv"
	"sync"

	"github.com/kong/go-kong/kong"
	corev1 "k8s.io/api/core/v1"
)

// builder makes Kong entities from decided routes and backends. Each
// goroutine that builds has its own, with its own scratch space and slabs.
type builder struct {
	ids     idMaker
	text    textBatch
	addrBuf []byte
	addrs   []span

	strings        slab[string]
	stringPtrs     slab[*string]
	routeBlocks    slab[routeBlock]
	serviceBlocks  slab[serviceBlock]
	upstreamBlocks slab[upstreamBlock]
	targetBlocks   slab[targetBlock]
	targetPtrs     slab[*kong.Target]
	backendSlab    slab[backend]
	pluginBlocks   slab[pluginBlock]
	plugins        []pluginOut // the plugin entities this builder made

	// expressions makes expression routes (Options.RouterFlavor).
	expressions bool
	exprParts   slab[exprPart]
}

// Steps that make fewer entities than this (routes and backends, or
// consumers) run on one goroutine: for them a second one costs more than it
// saves.
const parallelMinEntities = 2000

func useParallel(entities int) bool {
	return entities >= parallelMinEntities && runtime.GOMAXPROCS(0) > 1
}

// build makes the entities of every decided route and backend. Once the
// decisions are taken (which Ingress owns which path, which Service ports
// are used), each entity is a pure function of its own inputs, so the work
// may be split between two goroutines without changing a byte.
func (t *translator) build() {
	routes, backends := len(t.routes)/2, len(t.backends)/2
	other := &t.builder
	if t.parallel {
		other = &builder{expressions: t.builder.expressions}
	}
	t.inParallel(func() {
		t.builder.buildAll(t.routes[:routes], t.backends[:backends])
	}, func() {
		other.buildAll(t.routes[routes:], t.backends[backends:])
	})
	if other != &t.builder {
		t.builder.plugins = append(t.builder.plugins, other.plugins...)
	}
}

// inParallel runs a and b, on two goroutines for a large snapshot.
func (t *translator) inParallel(a, b func()) { runBoth(t.parallel, a, b) }

// runBoth runs a and b, on two goroutines when parallel is set.
func runBoth(parallel bool, a, b func()) {
	if !parallel {
		a()
		b()
		return
	}
	var wg sync.WaitGroup
	wg.Go(b)
	a()
	wg.Wait()
}

func (bd *builder) buildAll(routes []routeOf, backends []*backend) {
	for i := range routes {
		bd.buildRoute(&routes[i])
	}
	for _, b := range backends {
		bd.buildBackend(b)
	}
}

// buildRoute names the route <namespace>.<ingress>.<rule>.<path> (or
// <namespace>.<ingress>.default) and makes it.
func (bd *builder) buildRoute(r *routeOf) {
	bd.ids.begin("routes")
	bd.ids.buf = append(append(append(bd.ids.buf, r.ing.Namespace...), '.'), r.ing.Name...)
	if r.rule < 0 {
		bd.ids.buf = append(bd.ids.buf, ".default"...)
	} else {
		bd.ids.buf = strconv.AppendInt(append(bd.ids.buf, '.'), int64(r.rule), 10)
		bd.ids.buf = strconv.AppendInt(append(bd.ids.buf, '.'), int64(r.path), 10)
	}
	tb := &bd.text
	tb.reset()
	tb.buf = append(tb.buf, bd.ids.key()...)
	tb.end()
	tb.buf = bd.ids.append(tb.buf)
	tb.end()
	names := tb.cut()
	if bd.expressions {
		r.route = bd.expressionRoute(r.tags, names.at(1), names.at(0), r.hosts, r.paths, r.settings, r.priority)
	} else {
		r.route = bd.route(r.tags, names.at(1), names.at(0), r.hosts, r.paths, r.settings, r.priority)
	}
	for _, e := range r.settings.plugins {
		bd.attachPlugin(e, "route", *r.route.Name, *r.route.ID)
	}
}

// buildBackend makes the Kong service, upstream and targets of a Service
// port. Naming: service <namespace>.<service>.<port>, upstream (the Kong
// service's host) <service>.<namespace>.<port>.svc, target <ip>:<endpoint
// port>.
func (bd *builder) buildBackend(b *backend) {
	e, port := b.entry, b.port.Port
	svc := e.svc
	external := svc.Type == corev1.ServiceTypeExternalName

	// All names and ids of the backend's entities are cut from one string:
	// service name and id, then upstream name and id, then address and id
	// of each target.
	tb := &bd.text
	tb.reset()
	bd.ids.begin("services")
	bd.ids.buf = append(append(append(append(bd.ids.buf, svc.Namespace...), '.'), svc.Name...), '.')
	bd.ids.buf = strconv.AppendInt(bd.ids.buf, int64(port), 10)
	tb.buf = append(tb.buf, bd.ids.key()...)
	tb.end()
	tb.buf = bd.ids.append(tb.buf)
	tb.end()
	var addrs []span
	if !external {
		bd.ids.begin("upstreams")
		bd.ids.buf = append(append(append(append(bd.ids.buf, svc.Name...), '.'), svc.Namespace...), '.')
		bd.ids.buf = append(strconv.AppendInt(bd.ids.buf, int64(port), 10), ".svc"...)
		upstreamStart := len(tb.buf)
		tb.buf = append(tb.buf, bd.ids.key()...)
		upstreamEnd := len(tb.buf)
		tb.end()
		tb.buf = bd.ids.append(tb.buf)
		tb.end()
		addrs = bd.targetAddrs(e, b.port.Name)
		for _, a := range addrs {
			addr := bd.addrBuf[a.start:a.end]
			tb.buf = append(tb.buf, addr...)
			tb.end()
			bd.ids.begin("targets")
			bd.ids.buf = append(append(append(bd.ids.buf, tb.buf[upstreamStart:upstreamEnd]...), '/'), addr...)
			tb.buf = bd.ids.append(tb.buf)
			tb.end()
		}
	}
	text := tb.cut()

	if external {
		b.service = bd.service(e.tags, text.at(1), text.at(0), svc.ExternalName, int(port), &e.settings)
		bd.attachServicePlugins(b)
		return
	}
	upstream := text.at(2)
	b.service = bd.service(e.tags, text.at(1), text.at(0), upstream, int(port), &e.settings)
	// The plugins are made last: they reuse the text batch text reads from.
	defer bd.attachServicePlugins(b)
	b.upstream = bd.upstream(e.tags, text.at(3), upstream, e.settings.hostHeader)
	if len(addrs) == 0 {
		b.upstream.Targets = []*kong.Target{}
		return
	}
	targets := bd.targetPtrs.take(len(addrs))
	for i := range addrs {
		targets[i] = bd.target(e.tags, text.at(5+2*i), text.at(4+2*i))
	}
	b.upstream.Targets = targets
}

func (bd *builder) attachServicePlugins(b *backend) {
	for _, e := range b.entry.plugins {
		bd.attachPlugin(e, "service", *b.service.Name, *b.service.ID)
	}
}
