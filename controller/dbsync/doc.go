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
//     the sync before any write it would decide (the upserts a sync makes
//     from the listing it holds, below, come before it); the sync is
//     retried with backoff.
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
//
// # Listing
//
// A listing runs its requests side by side (Options.ListConcurrency): the
// kinds together, and the targets one request per upstream, those of the
// upstreams an earlier listing showed without waiting for the upstream
// listing. Only the upstreams this listing found count, and any failed
// request fails the whole listing. A Desired that arrives while a sync
// lists is applied by that sync: the listing serves any Desired.
//
// # Takeover
//
// In DB mode a listing is the slow part of a sync (one request per
// upstream; on PostgreSQL hundreds of milliseconds for a thousand
// entities), and a new leader used to start from nothing: it built the
// desired entities and listed Kong only after winning the lock. Now a
// standby (a Syncer its Gate does not let write) builds the entities of
// every Desired it is given at once, and lists Kong every WarmInterval and
// a second after each new Desired, by when the leader has usually written
// the same change (reads only, no term): its "warm" listing. The first sync of a new term
// (a term other than that of the previous sync) with a warm listing then:
//
//  1. writes at once, from the warm listing, the creates and updates the
//     Desired needs, and no delete; Kong refusing one of them is not
//     reported (step 3 decides). If the warm listing differs from the
//     Desired by more than a tenth of it (at least 64 entities) it is
//     taken for stale and skipped: those writes would mostly be redundant.
//  2. lists Kong completely, as every sync does. A Desired that arrives
//     meanwhile stops the listing, is written the same way at once, and
//     the listing starts over (at most three times; later changes wait
//     for the listing), so every write made from the warm listing has
//     completed before the listing used in step 3 began.
//  3. diffs the newest Desired against that fresh listing and applies the
//     difference, deletes included, with every guard above. Only then is
//     the Desired reported applied (OnApplied, AllApplied).
//
// # Writing ahead of the listing
//
// Every sync, not only a takeover's, writes ahead like this when it holds
// a listing: a leader keeps the last complete listing with its own writes
// applied to it, so a change is written at once from it (steps 1 and 2,
// with the same bound on its size; a bigger change waits for the listing)
// and the full listing that every sync makes, for deletes and drift, comes
// after. Otherwise every change would wait for a listing, on PostgreSQL
// the slowest part of a sync. A listing that is stale because someone
// changed Kong behind our back is as safe as a standby's, for the reasons
// below.
//
// Why a stale listing is safe here. The warm listing was taken before the
// lock was won, so the previous leader may have written after it. Steps 1
// and 2 write only entities of the Desired, each with the Desired's
// content, by id (a PUT): whatever Kong holds, such a write leaves that
// entity as the Desired wants it, which is what step 3 would make of it
// too. So a stale listing can only (a) make such a write redundant (Kong
// held that content already) or (b) hide a write that is needed (Kong
// changed since), which step 3 makes from its fresh listing; and as step
// 3's listing began after those writes completed, it shows them, so step 3
// corrects any of them that a newer Desired no longer wants. It never
// decides a delete: an entity missing from the Desired is deleted only from
// a complete listing taken within this term, so after the previous term's
// last write (the election's fencing: no write of the previous term starts
// once another replica can lead; see package election and its Limits),
// exactly as before. Nothing of ours is lost either: what the previous
// leader wrote after the warm listing and the Desired still wants is
// rewritten with the same content or left alone. The writes carry this
// term's epoch through the Gate and fence.Transport like every other, so a
// term that ends mid-takeover stops them. Step 1 writes nothing for an
// empty Desired, so AllowEmpty keeps its meaning, and a listing that fails
// in step 2 stops the sync before any delete and before anything is
// reported applied; the upserts of steps 1 and 2 may have been written by
// then, each a write the Desired asks for. The figures:
// konductor_kong_db_takeovers_total{listing="warm"|"stale"|"cold"},
// Status.Takeovers, konductor_kong_db_standby_listings_total and
// konductor_kong_db_listing_duration_seconds.
package dbsync
