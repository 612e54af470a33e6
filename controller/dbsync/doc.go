// Package dbsync keeps a Kong that runs with a database (DB mode) on the
// desired declarative configuration by diffing entities through the Admin
// API, the way a DB-less Kong is kept on it by POST /config (package
// kongsync).
//
// All Kong nodes of one database share one configuration, so the Syncer
// talks to a single healthy node at a time and fails over to the next one
// when it stops answering.
//
// A sync lists every entity carrying translate.ManagedByTag (services,
// routes, upstreams, targets, certificates, SNIs, consumers, their key-auth,
// basic-auth, jwt, acl and hmac-auth credentials, plugins), compares them
// with the desired ones field by field, normalised against Kong's defaults
// so an unchanged entity is never rewritten, and applies the difference
// with bounded concurrency in dependency order: parents are written before
// children (certificates → SNIs, upstreams → targets, services → routes,
// consumers → credentials; routes, services and consumers → plugins) and
// children are deleted before parents. Entities without the tag are never
// read, written or deleted.
//
// A plugin's config is compared key by key against what Kong holds, since
// Kong fills in the plugin schema's defaults; a basic-auth password is
// compared with the hashed form Kong serves. A credential's key, password
// or secret never appears in a log line, an error or a rejection report:
// credentials are named by id.
//
// Guarantees, and their limits:
//   - Deletes are computed only from a complete, successful listing of every
//     kind. A failed or timed-out read (a database outage answers 500) aborts
//     the sync before any write; the sync is retried with backoff.
//   - An empty desired configuration never deletes what Kong holds unless
//     Options.AllowEmpty says so.
//   - Every write asks the WriteGate first and carries the term through
//     fence.Transport, bounded by the term's ValidUntil; a write whose term
//     changed or ended is not sent, and the sync stops there.
//   - The periodic drift check (DriftInterval) is a full list and diff, so
//     an entity changed or deleted behind our back is restored. Fields of
//     ours that konductor never sets are compared against Kong's default
//     only for the fields listed in this package (see defaults); other
//     fields Kong may add are left alone.
//   - Kong rejecting an entity (4xx) is reported through OnRejected; the
//     rest of the configuration is still applied, children of a rejected
//     parent are skipped, and the sync is retried with backoff.
package dbsync
