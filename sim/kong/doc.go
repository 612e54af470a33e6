// Package kong is kongsim's core: a fake Kong 3.x node faithful enough that
// the real client github.com/kong/go-kong and a Kong ingress controller work
// against it unchanged.
//
// A Node bundles the Admin API (Node.Admin), the Status API (Node.Status)
// and the configuration its proxy serves (Node.Config). In DB-less mode
// (Options.Database "off") the configuration changes only through
// POST /config with a declarative 3.0 document (JSON or YAML, optionally
// wrapped as {"config": "<text>"}); entity writes answer 405. In database
// mode entity writes go through a store.Backend shared by several nodes,
// and each node polls the backend's revision every UpdateFrequency and
// reloads what its proxy serves, keeping the last configuration while the
// database is down.
//
// A DB-less node keeps, from its last accepted POST /config, the outcome
// of every top-level element of the document (keyed by its exact bytes),
// and derives the next state from the previous one by its differences, so
// that resending a large configuration with one change costs about that
// change. Its answers are those of a fresh node loading the same document
// (see declCache). Entities the load stamps take the load time of the
// state holding them, so a reload in another second reuses them too. The
// proxy checks each configuration as it is loaded and builds its router
// on the first request that needs it, as Kong answers a load before its
// router is rebuilt (proxy.Proxy.Stage). The 201 answer, megabytes for
// thousands of entities, is rendered as it is read.
//
// Consumers carry the credentials of the authentication plugins
// (keyauth_credentials, basicauth_credentials, acls, jwt_secrets,
// hmacauth_credentials), nested under a consumer in a declarative document
// or written through /consumers/{c}/key-auth and the like, and the proxy
// runs the plugins of its package's list (see package proxy) in Kong's
// priority order, choosing each plugin's instance by Kong's scope
// precedence. The Status API serves GET /metrics as Kong's prometheus
// plugin does, and Node.ProxyTLSConfig serves TLS proxy listeners with
// the loaded certificates by SNI.
//
// Options.RouterFlavor is KONG_ROUTER_FLAVOR, reported as GET /'s
// configuration.router_flavor. Under "expressions" routes gain Kong's
// expression and priority fields and the checks of its validate_route (an
// expression excludes hosts, paths and the other match fields, and must
// compile: package atc); traditional-field routes load beside them and
// the router ranks expression routes above them, as Kong does. Under the
// other flavors those fields are unknown.
//
// GET / reports the node's listen settings (Options.ProxyListen and the
// like) as Kong parses them: configuration.proxy_listen and
// proxy_listeners, which go-kong's Listeners reads. GET /tags and
// GET /tags/{tag} list the tags of every entity.
//
// Nodes open no sockets and stop their goroutines when Run's context ends,
// so simulations run them under testing/synctest and reach them through
// NewInMemoryTransport.
//
// # Harness extension
//
// Besides Kong's API, the Admin handler serves GET /_kongsim/audit: a JSON
// array of every accepted configuration change (POST /config and entity
// writes) with its time, method, path, resulting configuration hash, DB
// revision, and the writer identity and fencing epoch taken from the
// X-Konductor-Writer and X-Konductor-Epoch request headers. Node.Audit
// returns the same in Go. Real Kong has no such path.
//
// # Known differences from Kong
//
//   - Regex route paths are compiled with Go's RE2 syntax, not PCRE:
//     look-around and back-references are rejected.
//   - The configuration hash is md5 over a canonical form of the loaded
//     entities (not over the request text), so check_hash=1 answers 304 for
//     a semantically unchanged configuration whatever its encoding. Kong
//     answers 304 only for raw-text bodies and always reloads a JSON
//     document body; clients must accept either.
//   - Form bodies are converted by field type like Kong's, without Kong's
//     finer points (e.g. comma-separated arrays).
//   - With flatten_errors=1, Kong drains the per-entity errors out of
//     "fields"; kongsim keeps the nested "fields" tree complete as well.
//   - In database mode a node serializes its own writes, and the backend
//     enforces unique names, but two nodes writing at once can still race
//     on foreign keys (a route created while its service is deleted).
//   - Only the plugins listed by GET / exist. Of those, the proxy runs
//     key-auth, basic-auth, jwt, hmac-auth, acl, cors, correlation-id,
//     request-transformer, response-transformer, ip-restriction,
//     rate-limiting, request-termination and prometheus; the others
//     (request-size-limiting, response-ratelimiting) are validated and
//     stored but do nothing.
//   - Executed plugins leave out: key-auth's credential ttl, acl's
//     authenticated groups and consumer groups, request-termination's
//     echo, the transformers' templates and body (JSON/form) changes,
//     rate-limiting's cluster and redis policies (counted as local), and
//     cors' origin-absent handling. Plugins run in the access and
//     response-header phases only: only key-auth (key_in_body) and
//     hmac-auth (validate_request_body) read a request body, none reads a
//     response body, and no plugin runs on a request that matched no
//     route.
//   - Rate-limiting counters are per node and in memory, as Kong's local
//     policy keeps them per node.
//   - kong_bandwidth_bytes counts request and response sizes from Go's
//     view of headers and bodies, not nginx's byte counts; the latency
//     histograms use whole milliseconds as Kong does. Target health is
//     always healthchecks_off: no health checks run.
//   - Auto-generated credential secrets (a key-auth key left out) are
//     random in DB mode, as in Kong, but derived from the entity id in a
//     declarative load, so that reloading a document keeps its hash.
//   - The offset of GET /tags counts rows, so a page after a write may
//     repeat or skip a row.
//   - Certificates' cert_alt/key_alt are not served, and no client
//     certificate is asked for.
//   - Consumer groups and the credentials of plugins kongsim lacks
//     (oauth2, mtls-auth) are not modelled: a document carrying them is
//     refused with "unknown field".
package kong
