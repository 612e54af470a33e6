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
// (see declCache).
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
//   - Only the plugins listed by GET / exist; consumer credentials
//     (key-auth, basic-auth, acl entities) are not modelled.
package kong
