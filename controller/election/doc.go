// Package election elects one konductor replica to write to Kong, with a
// term number (epoch) for fencing and a fast, clean handover.
//
// # Use
//
//	el, err := election.New(election.Config{
//		Client:        clientset,
//		Namespace:     podNamespace,
//		Name:          election.LockName(electionID, ingressClass),
//		Identity:      election.DefaultIdentity(podName),
//		LeaseDuration: 15 * time.Second,
//		RenewDeadline: 10 * time.Second,
//		RetryPeriod:   2 * time.Second,
//		OnNewTerm:     func(fence.Term) { syncer.PushNow() }, // a warm standby pushes at once
//		BeforeRelease: syncer.Drain,                          // stop writing, wait for in-flight writes
//	})
//	go el.Run(ctx) // on ctx cancel: stop granting, drain, release, return
//	// The writer asks el (a fence.WriteGate) for a term before each batch
//	// and sends through fence.Transport.
//
// # Lock
//
// The lock is one object in the controller's namespace, named
// "<election-id>-<ingress-class>" (LockName; default
// "ingress-controller-leader-kong"): a ConfigMap whose annotation
// "control-plane.alpha.kubernetes.io/leader" holds client-go's
// LeaderElectionRecord as JSON (ConfigMapLock, a resourcelock.Interface, the
// format of the Kong ingress controller 1.x), or, as an option, a
// coordination.k8s.io Lease (client-go's LeaseLock). Every write is
// conditional on the resourceVersion last read, so of two candidates racing
// for the lock the API server lets exactly one through.
//
// RBAC needed, in the controller's namespace only (no list, nothing
// cluster-wide):
//
//	configmaps (or leases): create                   (no resourceNames: a create cannot be narrowed by name)
//	configmaps (or leases): get, update, watch       resourceNames: [<lock name>]
//
// The watch asks for the single object with the field selector
// metadata.name=<lock name>, which the API server authorises as a request
// for that name. Without "watch" the elector logs a warning and works by
// polling every RetryPeriod; only the fast handover is lost.
//
// # Algorithm
//
// The record rules are client-go's leaderelection rules; the loop is our own,
// because client-go's LeaderElector has no way to attempt now (it waits for
// its next RetryPeriod tick) and does not expose when a renewal was sent,
// which fencing needs. A candidate reads the lock and may take it when it has
// no holder (released), does not exist, or its record has not changed for
// the record's LeaseDurationSeconds as measured on the candidate's own
// monotonic clock from when it first saw that record. Timestamps inside the
// record are never compared with local time, so clock offsets between
// nodes do not matter. The leader renews every RetryPeriod.
//
// Each new term writes LeaderTransitions+1, also when a replica takes back
// its own lapsed record; that count is the term's Epoch, so epochs strictly
// increase across terms. A lock we create starts at epoch 1, keeping 0 for
// "never elected" (fence.Always uses 0 for writers without election); a lock
// created by client-go starts at 0, and our first term on it is 1.
//
// Candidates also watch the lock object. A watch event that shows the lock
// released (empty holder, as client-go's ReleaseOnCancel and our Run write)
// or deleted wakes the loop for an immediate attempt, and the expiry of an
// observed lease is computed from the event's arrival so the attempt happens
// at that instant rather than up to a RetryPeriod later. The watch only
// speeds things up; all decisions are taken on a fresh read of the lock.
//
// # Fencing and step-down
//
// Permit grants the current term only while now < S + RenewDeadline, where S
// is the local monotonic time taken just before sending the last write
// (acquire or renew) that the API server accepted. Term.ValidUntil is that
// instant, and fence.Transport refuses to start a write after it. Another
// candidate can take the lock no earlier than LeaseDuration after it first
// observes that write, which happens after the write was sent, i.e. after S.
// So while RenewDeadline < LeaseDuration, no write of ours starts once
// another replica can lead, even if we cannot reach the API server at all:
// a partitioned leader stops granting on its own clock, without being told,
// and even while its election loop is stuck in a request.
//
// Others notice a renewal only as a change of the record's bytes, and the
// record's times have one-second resolution: a renewal in the same second
// as the previous one is invisible to them, so it does not extend our term
// either (S stays at the first write of that content). With a RetryPeriod
// under a second the term is thus extended about once a second.
//
// # Limits
//
// The guarantee rests on the margin LeaseDuration − RenewDeadline. It must
// cover (a) the difference in clock rate between the leader's and the
// candidates' nodes over one LeaseDuration, (b) the delay between the
// API server accepting our write and a candidate observing it (which only
// lengthens the candidate's wait, so it is on the safe side), and (c) the
// time a write that started just before ValidUntil takes to reach Kong. (c)
// is the writer's business: bound each request by Term.ValidUntil. With the
// defaults 15 s / 10 s the margin is 5 s. Nothing here stops a write that was
// already on the wire from landing late; Kong itself knows no epochs, which
// is why kongsim records them for the test oracle.
//
// On graceful shutdown (Run's context cancelled) the leader stops granting at
// once, calls BeforeRelease (bounded by RenewDeadline) and then releases the
// lock; a watching standby takes over within the time of one read and one
// write. If BeforeRelease overruns its bound, writes may still be in flight,
// so the lock is not released and standbys wait for the lease to expire.
// After a crash, a standby that watched the last renewal takes over
// LeaseDuration after it, which is at most LeaseDuration after the crash.
//
// Deleting the lock object by hand ends the holder's term as soon as it
// notices (at once through the watch, else at its next renewal). Candidates
// that saw the deleted record wait for its lease to run out before creating
// a new lock, and continue its epochs; a replica started after the deletion
// knows neither, so deleting a live lock voids the epoch guarantee.
//
// Identities must be unique per process: the record names its holder only by
// identity, so two processes with one identity would both believe they hold
// the lock.
//
// Callbacks run on the election loop and must return quickly.
package election
