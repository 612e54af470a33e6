// Command kongsim runs one fake Kong 3.x node: Admin API, Status API and
// proxy, configured by Kong's own KONG_* environment variables so that it
// can stand in for the Kong container image. `kongsim migrations bootstrap`
// creates the PostgreSQL schema, as `kong migrations bootstrap` does.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"konductor.dev/sim/kong"
	"konductor.dev/sim/kong/pgstore"
	"konductor.dev/sim/kong/store"
)

const usage = `kongsim — a fake Kong 3.x node (Admin API, Status API, proxy).

Usage:
  kongsim                        run a node
  kongsim migrations bootstrap   create the PostgreSQL schema (also: up, finish)
  kongsim quit [--wait=N] [--timeout=N] [--prefix=DIR]
                                 stop the node running in the prefix gracefully,
                                 after N seconds (Kong's preStop: kong quit --wait=15)
  kongsim --help                 show this help

Configuration (environment, as the Kong image reads it):
  KONG_DATABASE             off (default) or postgres
  KONG_PROXY_LISTEN         proxy addresses, "ssl" for TLS (default 0.0.0.0:8000; "off" disables)
  KONG_ADMIN_LISTEN         Admin API address (default 127.0.0.1:8001; "off" disables)
  KONG_STATUS_LISTEN        Status API address, e.g. 0.0.0.0:8100 (off when empty)
  KONG_PG_HOST              PostgreSQL host (default 127.0.0.1)
  KONG_PG_PORT              PostgreSQL port (default 5432)
  KONG_PG_USER              PostgreSQL user (default kong)
  KONG_PG_PASSWORD          PostgreSQL password (default empty)
  KONG_PG_DATABASE          PostgreSQL database (default kong)
  KONG_DB_UPDATE_FREQUENCY  seconds between database polls (default 5; fractions allowed)
  KONG_DECLARATIVE_CONFIG   declarative file loaded at start in DB-less mode
  KONG_ROUTER_FLAVOR        traditional_compatible (default), traditional or expressions
                            (expressions: routes may carry an ATC expression and priority)
  KONG_NODE_ID              node id reported by GET / (default: random)
  KONG_LOG_LEVEL            debug, info (default), notice, warn or error
  KONG_PREFIX               where the node writes pids/nginx.pid for kong quit

Listen values follow Kong's syntax loosely: the Admin and Status APIs use the
first host:port; the proxy listens on every comma-separated address, with TLS
where the address is flagged "ssl" (e.g. "0.0.0.0:8000, 0.0.0.0:8443 ssl"),
serving the certificate whose SNI the client names, else a self-signed
default, and offering HTTP/2 where also flagged "http2". Other flags
("reuseport backlog=16384") are ignored.
On SIGTERM, SIGINT or SIGQUIT the node turns not-ready, finishes in-flight requests
and exits 0.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil))
}

// listening receives the bound addresses once the node serves ("" = off):
// proxy is the first plain proxy listener, proxySSL the first TLS one.
type listening func(admin, proxy, status, proxySSL string)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, started listening) int {
	if len(args) > 0 && args[0] == "quit" {
		return quit(ctx, args[1:], getenv, stdout, stderr)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "kongsim:", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	switch {
	case len(args) == 0:
	case len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help"):
		fmt.Fprint(stdout, usage)
		return 0
	case len(args) == 2 && args[0] == "migrations" && (args[1] == "bootstrap" || args[1] == "up" || args[1] == "finish"):
		if err := bootstrap(ctx, cfg); err != nil {
			log.Error("migrations failed", "err", err)
			return 1
		}
		log.Info("database is up to date", "command", strings.Join(args, " "))
		return 0
	default:
		fmt.Fprintf(stderr, "kongsim: unknown command %q\n\n%s", strings.Join(args, " "), usage)
		return 2
	}
	// SIGQUIT is what `kong quit` sends nginx: a graceful stop too.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()
	if err := serve(ctx, cfg, log, started); err != nil {
		log.Error("kongsim failed", "err", err)
		return 1
	}
	return 0
}

// config is the node's configuration as read from KONG_* variables.
type config struct {
	database        string
	routerFlavor    string
	proxyListen     string // first plain proxy address, "" = none
	proxyListens    []listenAddr
	listenSettings  [3]string // KONG_PROXY_LISTEN, KONG_ADMIN_LISTEN, KONG_STATUS_LISTEN as given, for GET /
	adminListen     string
	statusListen    string
	pgHost, pgPort  string
	pgUser, pgPass  string
	pgDatabase      string
	updateFrequency time.Duration
	declarative     string
	nodeID          string
	logLevel        slog.Level
	prefix          string // KONG_PREFIX, "" = no pid file
}

func loadConfig(getenv func(string) string) (config, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	c := config{
		database:     env("KONG_DATABASE", kong.DatabaseOff),
		routerFlavor: env("KONG_ROUTER_FLAVOR", kong.DefaultRouterFlavor),
		pgHost:       env("KONG_PG_HOST", "127.0.0.1"), pgPort: env("KONG_PG_PORT", "5432"),
		pgUser: env("KONG_PG_USER", "kong"), pgPass: getenv("KONG_PG_PASSWORD"),
		pgDatabase:  env("KONG_PG_DATABASE", "kong"),
		declarative: env("KONG_DECLARATIVE_CONFIG", ""),
		nodeID:      env("KONG_NODE_ID", ""),
		prefix:      env("KONG_PREFIX", ""),
	}
	if c.database != kong.DatabaseOff && c.database != kong.DatabasePostgres {
		return c, fmt.Errorf("KONG_DATABASE=%q: expected off or postgres", c.database)
	}
	if err := kong.CheckRouterFlavor(c.routerFlavor); err != nil {
		return c, fmt.Errorf("KONG_ROUTER_FLAVOR: %w", err)
	}
	var err error
	c.listenSettings = [3]string{env("KONG_PROXY_LISTEN", "0.0.0.0:8000"), env("KONG_ADMIN_LISTEN", "127.0.0.1:8001"),
		env("KONG_STATUS_LISTEN", "off")}
	if c.proxyListens, err = parseListens(c.listenSettings[0]); err != nil {
		return c, fmt.Errorf("KONG_PROXY_LISTEN: %w", err)
	}
	for _, l := range c.proxyListens {
		if !l.ssl {
			c.proxyListen = l.addr
			break
		}
	}
	for _, l := range []struct {
		name, def string
		dst       *string
	}{
		{"KONG_ADMIN_LISTEN", "127.0.0.1:8001", &c.adminListen},
		{"KONG_STATUS_LISTEN", "off", &c.statusListen},
	} {
		if *l.dst, err = parseListen(env(l.name, l.def)); err != nil {
			return c, fmt.Errorf("%s: %w", l.name, err)
		}
	}
	freq, err := strconv.ParseFloat(env("KONG_DB_UPDATE_FREQUENCY", "5"), 64)
	if err != nil || freq <= 0 {
		return c, fmt.Errorf("KONG_DB_UPDATE_FREQUENCY=%q: expected a positive number of seconds", getenv("KONG_DB_UPDATE_FREQUENCY"))
	}
	c.updateFrequency = time.Duration(freq * float64(time.Second))
	if port, err := strconv.Atoi(c.pgPort); err != nil || port <= 0 || port > 65535 {
		return c, fmt.Errorf("KONG_PG_PORT=%q: expected a port number", c.pgPort)
	}
	switch strings.ToLower(env("KONG_LOG_LEVEL", "info")) {
	case "debug":
		c.logLevel = slog.LevelDebug
	case "info", "notice":
		c.logLevel = slog.LevelInfo
	case "warn":
		c.logLevel = slog.LevelWarn
	case "error", "crit", "alert", "emerg":
		c.logLevel = slog.LevelError
	default:
		return c, fmt.Errorf("KONG_LOG_LEVEL=%q: expected debug, info, notice, warn or error", getenv("KONG_LOG_LEVEL"))
	}
	return c, nil
}

// parseListen takes the first address of a Kong listen value
// ("0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 ssl"); "" means off.
func parseListen(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "off" {
		return "", nil
	}
	first := strings.TrimSpace(strings.Split(v, ",")[0])
	addr := strings.Fields(first)[0]
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q: expected host:port", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%q: bad port", v)
	}
	return net.JoinHostPort(host, port), nil
}

// listenAddr is one address of a listen value.
type listenAddr struct {
	addr  string
	ssl   bool
	http2 bool // offered by ALPN on a TLS listener
}

// parseListens reads every address of a listen value and its ssl flag;
// "off" or "" gives none.
func parseListens(v string) ([]listenAddr, error) {
	v = strings.TrimSpace(v)
	if v == "" || v == "off" {
		return nil, nil
	}
	var out []listenAddr
	for _, entry := range strings.Split(v, ",") {
		fields := strings.Fields(entry)
		if len(fields) == 0 {
			return nil, fmt.Errorf("%q: empty address", v)
		}
		addr, err := parseListen(fields[0])
		if err != nil {
			return nil, err
		}
		l := listenAddr{addr: addr}
		for _, f := range fields[1:] {
			l.ssl = l.ssl || f == "ssl"
			l.http2 = l.http2 || f == "http2"
		}
		out = append(out, l)
	}
	return out, nil
}

func (c config) dsn() string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(c.pgUser, c.pgPass),
		Host: net.JoinHostPort(c.pgHost, c.pgPort), Path: "/" + c.pgDatabase,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func bootstrap(ctx context.Context, c config) error {
	if c.database != kong.DatabasePostgres {
		return errors.New("migrations need KONG_DATABASE=postgres")
	}
	st, err := pgstore.New(ctx, c.dsn())
	if err != nil {
		return err
	}
	defer st.Close()
	var b store.Bootstrapper = st
	return b.Bootstrap(ctx)
}

// serve runs the node until ctx ends, then drains and shuts down.
func serve(ctx context.Context, c config, log *slog.Logger, started listening) error {
	opts := kong.Options{
		Database: c.database, RouterFlavor: c.routerFlavor, UpdateFrequency: c.updateFrequency, NodeID: c.nodeID, Logger: log,
		ProxyListen: c.listenSettings[0], AdminListen: c.listenSettings[1], StatusListen: c.listenSettings[2],
	}
	if h, err := os.Hostname(); err == nil {
		opts.Hostname = h
	}
	if c.database == kong.DatabasePostgres {
		st, err := pgstore.New(ctx, c.dsn())
		if err != nil {
			return err
		}
		defer st.Close()
		opts.Backend = st
	} else if c.declarative != "" {
		b, err := os.ReadFile(c.declarative)
		if err != nil {
			return fmt.Errorf("KONG_DECLARATIVE_CONFIG: %w", err)
		}
		opts.DeclarativeConfig = b
	}
	node, err := kong.NewNode(opts)
	if err != nil {
		return err
	}
	defer node.Close()
	removePid, err := writePidFile(c.prefix)
	if err != nil {
		return err
	}
	defer removePid()

	type listener struct {
		name  string
		addr  string
		ssl   bool
		http2 bool
		h     http.Handler
		srv   *http.Server
		ln    net.Listener
	}
	ls := []*listener{{name: "admin", addr: c.adminListen, h: node.Admin()}}
	for _, l := range c.proxyListens {
		name := "proxy"
		if l.ssl {
			name = "proxy_ssl"
		}
		ls = append(ls, &listener{name: name, addr: l.addr, ssl: l.ssl, http2: l.http2, h: node.Proxy()})
	}
	ls = append(ls, &listener{name: "status", addr: c.statusListen, h: node.Status()})
	bound := map[string]string{}
	for _, l := range ls {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range ls {
				if o.ln != nil {
					o.ln.Close()
				}
			}
			return fmt.Errorf("%s listener: %w", l.name, err)
		}
		if _, seen := bound[l.name]; !seen {
			bound[l.name] = ln.Addr().String()
		}
		l.ln = ln
		l.srv = &http.Server{Handler: l.h, ReadHeaderTimeout: 30 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		if l.ssl {
			// HTTP/2 only where the listener says "http2", as in Kong.
			l.srv.TLSConfig = node.ProxyTLSConfig()
			l.srv.TLSConfig.NextProtos = []string{"http/1.1"}
			if l.http2 {
				l.srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
			} else {
				l.srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
			}
		}
	}

	nodeCtx, stopNode := context.WithCancel(context.Background())
	nodeDone := make(chan struct{})
	go func() { _ = node.Run(nodeCtx); close(nodeDone) }()
	serveErr := make(chan error, len(ls))
	for _, l := range ls {
		if l.srv != nil {
			go func() {
				serve := l.srv.Serve
				if l.ssl {
					serve = func(ln net.Listener) error { return l.srv.ServeTLS(ln, "", "") }
				}
				if err := serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					serveErr <- fmt.Errorf("%s listener: %w", l.name, err)
				}
			}()
		}
	}
	log.Info("kongsim started", "database", c.database, "admin", bound["admin"], "proxy", bound["proxy"],
		"proxy_ssl", bound["proxy_ssl"], "status", bound["status"])
	if started != nil {
		started(bound["admin"], bound["proxy"], bound["status"], bound["proxy_ssl"])
	}

	var failure error
	select {
	case <-ctx.Done():
	case failure = <-serveErr:
	}
	// Turn not-ready first so load balancers stop sending, then let the
	// in-flight requests finish.
	node.SetDraining(true)
	log.Info("kongsim shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, l := range ls {
		if l.srv != nil {
			if err := l.srv.Shutdown(shutdownCtx); err != nil {
				log.Warn("shutdown incomplete", "listener", l.name, "err", err)
			}
		}
	}
	stopNode()
	<-nodeDone
	log.Info("kongsim stopped")
	return failure
}
