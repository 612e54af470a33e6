package kong

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"konductor.dev/controller/fence"
	"konductor.dev/sim/kong/proxy"
	"konductor.dev/sim/kong/store"
)

// Database modes, as KONG_DATABASE spells them.
const (
	DatabaseOff      = "off"
	DatabasePostgres = "postgres"
)

// DefaultVersion is the Kong version a node reports.
const DefaultVersion = "3.9.1"

// Options configures a Node.
type Options struct {
	// Database is DatabaseOff (default) or DatabasePostgres.
	Database string
	// Backend stores entities in database mode; required there.
	Backend store.Backend
	// UpdateFrequency is how often a DB-mode node polls the backend for
	// changes (KONG_DB_UPDATE_FREQUENCY); default 5s.
	UpdateFrequency time.Duration
	// DeclarativeConfig, in DB-less mode, is loaded at start
	// (KONG_DECLARATIVE_CONFIG's content).
	DeclarativeConfig []byte
	// NodeID defaults to a random UUID; Hostname to "kongsim".
	NodeID, Hostname string
	// Version defaults to DefaultVersion.
	Version string
	// Now defaults to time.Now; it stamps created_at and audit entries.
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ProxyTransport carries the proxy's upstream requests; nil dials
	// real connections.
	ProxyTransport http.RoundTripper
	// Observer, if set, is told about every configuration the node starts
	// serving, after the proxy accepted it.
	Observer Observer
	// ProxyListen, StreamListen, AdminListen and StatusListen are the
	// KONG_*_LISTEN values GET / reports (configuration.proxy_listen and
	// proxy_listeners, and so on); empty means Kong's default. The node
	// opens no sockets: whoever serves its handlers listens.
	ProxyListen, StreamListen, AdminListen, StatusListen string
	// RouterFlavor is KONG_ROUTER_FLAVOR: traditional_compatible (the
	// default), traditional or expressions. It decides the routes schema
	// (expression and priority exist only under expressions) and is
	// reported in GET /.
	RouterFlavor string
}

// Observer watches the configurations a node serves.
type Observer interface {
	Configure(st *State) error
}

// AuditEntry is one accepted configuration change.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	// Hash is the configuration hash after the change.
	Hash string `json:"hash"`
	// Revision is the backend revision after the change (DB mode only).
	Revision int64 `json:"revision,omitempty"`
	// Writer and Epoch come from the X-Konductor-Writer and
	// X-Konductor-Epoch request headers (empty and 0 when absent).
	Writer string `json:"writer"`
	Epoch  int64  `json:"epoch"`
}

// Node is one simulated Kong: Admin API, Status API and the configuration
// its proxy serves. It opens no sockets and its goroutines end with the
// context given to Run, so it runs under testing/synctest.
type Node struct {
	opts    Options
	dbless  bool
	log     *slog.Logger
	proxy   *proxy.Proxy
	metrics *nodeMetrics

	listens map[string]any // the *_listen settings of GET /'s configuration

	mu       sync.Mutex
	state    *State // DB-less: the loaded config; DB mode: the proxy's cache
	cacheRev int64
	built    bool // DB mode: a state was loaded from the backend
	audit    []AuditEntry
	readSt   *State // DB mode: last state read for the Admin API
	readRev  int64

	loading sync.Mutex // one POST /config at a time
	// decl is what the last accepted declarative load leaves for the
	// next one to reuse; guarded by loading.
	decl *declCache
	// bodyBuf is the buffer POST /config reads its body into, reused by
	// the next load: a load keeps no slice of its body (what it keeps is
	// decoded or copied). Guarded by loading.
	bodyBuf  []byte
	writing  sync.Mutex // one DB-mode entity write at a time
	draining atomic.Bool
	requests atomic.Int64
}

// NewNode builds a node. In DB-less mode a declarative configuration, if
// given, must be valid.
func NewNode(opts Options) (*Node, error) {
	if opts.Database == "" {
		opts.Database = DatabaseOff
	}
	if opts.Database != DatabaseOff && opts.Database != DatabasePostgres {
		return nil, fmt.Errorf("kongsim: database %q: expected %q or %q", opts.Database, DatabaseOff, DatabasePostgres)
	}
	if opts.Database == DatabasePostgres && opts.Backend == nil {
		return nil, errors.New("kongsim: database mode needs a Backend")
	}
	if opts.RouterFlavor == "" {
		opts.RouterFlavor = DefaultRouterFlavor
	}
	if err := CheckRouterFlavor(opts.RouterFlavor); err != nil {
		return nil, fmt.Errorf("kongsim: %w", err)
	}
	if opts.UpdateFrequency <= 0 {
		opts.UpdateFrequency = 5 * time.Second
	}
	if opts.NodeID == "" {
		opts.NodeID = uuid.NewString()
	}
	if opts.Hostname == "" {
		opts.Hostname = "kongsim"
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	listens, err := listenSettings(opts)
	if err != nil {
		return nil, fmt.Errorf("kongsim: %w", err)
	}
	n := &Node{opts: opts, dbless: opts.Database == DatabaseOff, log: opts.Logger, state: emptyState(), listens: listens}
	n.metrics = newNodeMetrics(n)
	n.proxy = proxy.New(proxy.Options{Version: opts.Version, Transport: opts.ProxyTransport, Now: opts.Now, Observe: n.metrics.observe})
	if n.dbless && len(opts.DeclarativeConfig) > 0 {
		st, decl, err := n.decl.load(opts.DeclarativeConfig, opts.Now().Unix(), n.state, opts.RouterFlavor)
		if err != nil {
			return nil, fmt.Errorf("kongsim: declarative config: %w", err)
		}
		if err := n.configureProxy(st); err != nil {
			return nil, err
		}
		n.state, n.decl = st, decl
	}
	return n, nil
}

// Run polls the backend in database mode until ctx ends; in DB-less mode
// it only waits.
func (n *Node) Run(ctx context.Context) error {
	if n.dbless {
		<-ctx.Done()
		return nil
	}
	n.poll(ctx)
	t := time.NewTicker(n.opts.UpdateFrequency)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.poll(ctx)
		}
	}
}

// poll reloads the proxy's cache when the backend revision moved. With the
// database down the node keeps what it has.
func (n *Node) poll(ctx context.Context) {
	rev, err := n.opts.Backend.Revision(ctx)
	if err != nil {
		n.log.Debug("database poll failed", "err", err)
		return
	}
	n.mu.Lock()
	fresh := n.built && rev == n.cacheRev
	// The Admin API's state at this revision (kept up to date by this
	// node's own writes) spares reloading the whole database.
	st := n.readSt
	if n.readRev != rev {
		st = nil
	}
	n.mu.Unlock()
	if fresh {
		return
	}
	if st == nil {
		st, rev, err = n.loadState(ctx)
		if err != nil {
			n.log.Debug("database load failed", "err", err)
			return
		}
	}
	if err := n.configureProxy(st); err != nil {
		n.log.Error("proxy refused configuration", "err", err)
		return
	}
	n.mu.Lock()
	n.state, n.cacheRev, n.built = st, rev, true
	n.mu.Unlock()
	n.log.Debug("configuration reloaded from database", "revision", rev, "entities", st.Count())
}

// configureProxy makes st what the proxy routes with.
func (n *Node) configureProxy(st *State) error {
	if err := n.proxy.Stage(st.ProxyConfig()); err != nil {
		return err
	}
	if n.opts.Observer != nil {
		return n.opts.Observer.Configure(st)
	}
	return nil
}

// Proxy returns the node's proxy handler (KONG_PROXY_LISTEN). It routes
// with the configuration last loaded, and answers 404 while there is none.
func (n *Node) Proxy() http.Handler { return n.proxy }

// ProxyTLSConfig serves the proxy's TLS listeners (KONG_PROXY_LISTEN
// entries flagged "ssl"): the loaded certificate whose SNI the client
// names, else a self-signed default certificate.
func (n *Node) ProxyTLSConfig() *tls.Config { return n.proxy.TLSConfig() }

// Close releases the proxy's idle upstream connections.
func (n *Node) Close() { n.proxy.Close() }

// Config returns the configuration the proxy currently serves.
func (n *Node) Config() *State {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// ConfigHash returns the hash of the served configuration.
func (n *Node) ConfigHash() string { return n.Config().Hash() }

// Audit returns a copy of the accepted configuration changes, oldest first.
func (n *Node) Audit() []AuditEntry {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]AuditEntry(nil), n.audit...)
}

// SetDraining makes /status/ready report 503 "draining" (or undoes it).
func (n *Node) SetDraining(d bool) { n.draining.Store(d) }

// Ready reports whether the Status API answers 200 on /status/ready and,
// if not, why.
func (n *Node) Ready(ctx context.Context) (bool, string) {
	if n.draining.Load() {
		return false, "draining"
	}
	if n.dbless {
		if n.Config().Empty() {
			return false, "no configuration available (empty configuration present)"
		}
		return true, ""
	}
	n.mu.Lock()
	built := n.built
	n.mu.Unlock()
	if !built {
		return false, "router builds not yet complete"
	}
	if err := n.opts.Backend.Ping(ctx); err != nil {
		return false, "failed to connect to database"
	}
	return true, ""
}

func (n *Node) record(r *http.Request, hash string, rev int64) {
	epoch, _ := strconv.ParseInt(r.Header.Get(fence.HeaderEpoch), 10, 64)
	e := AuditEntry{
		Time: n.opts.Now(), Method: r.Method, Path: r.URL.RequestURI(), Hash: hash, Revision: rev,
		Writer: r.Header.Get(fence.HeaderWriter), Epoch: epoch,
	}
	n.mu.Lock()
	n.audit = append(n.audit, e)
	n.mu.Unlock()
}

// readState returns the entities Admin API reads see: the loaded config in
// DB-less mode, the database's content in DB mode.
func (n *Node) readState(ctx context.Context) (*State, int64, error) {
	if n.dbless {
		return n.Config(), 0, nil
	}
	// A client that hangs up does not abort the read, as in Kong: cutting
	// a PostgreSQL query short closes its pooled connection, and the
	// next requests would wait for new ones. The store bounds the read.
	ctx = context.WithoutCancel(ctx)
	rev, err := n.opts.Backend.Revision(ctx)
	if err != nil {
		return nil, 0, err
	}
	n.mu.Lock()
	if n.readSt != nil && n.readRev == rev {
		st := n.readSt
		n.mu.Unlock()
		return st, rev, nil
	}
	n.mu.Unlock()
	st, rev, err := n.loadState(ctx)
	if err != nil {
		return nil, 0, err
	}
	n.mu.Lock()
	n.readSt, n.readRev = st, rev
	n.mu.Unlock()
	return st, rev, nil
}

// loadState reads the whole database into a State.
func (n *Node) loadState(ctx context.Context) (*State, int64, error) {
	recs, rev, err := n.opts.Backend.Load(ctx)
	if err != nil {
		return nil, 0, err
	}
	st, err := stateFromRecords(recs)
	if err != nil {
		return nil, 0, fmt.Errorf("database holds an unreadable entity: %w", err)
	}
	return st, rev, nil
}

// commit writes a mutation to the backend and returns the resulting hash
// and revision.
func (n *Node) commit(ctx context.Context, base *State, baseRev int64, m *mutation) (string, int64, error) {
	next := applyMutation(base, m)
	recs := make([]store.Record, len(m.puts))
	for i, p := range m.puts {
		// The new state encoded the entity already.
		id := asString(p.e["id"])
		recs[i] = store.Record{Type: p.sch.collection, ID: id, Name: uniqueName(p.sch, p.e), Body: next.encoded(p.sch.collection, id)}
	}
	rev, err := n.opts.Backend.Apply(ctx, recs, m.dels)
	if err != nil {
		return "", 0, err
	}
	if rev == baseRev+1 {
		// Nobody else wrote in between: the next read can use this state.
		n.mu.Lock()
		n.readSt, n.readRev = next, rev
		n.mu.Unlock()
	}
	return next.Hash(), rev, nil
}

// applyMutation returns base with m applied.
func applyMutation(base *State, m *mutation) *State { return base.with(m.puts, m.dels) }
