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
//	pods: get, watch                                 (Config.PodEvidence; see "Takeover on evidence")
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
// is why kongsim records them for the test oracle. A takeover on pod
// evidence (below) shortens the distance between the dead holder's last
// write and the next term's first one from at least the margin to the
// kubelet's reporting delay (about a second): a request the holder had
// fully sent before it died, which Kong then takes longer than that to
// process, can complete after the new leader's first write. That first
// push is a complete configuration, and the drift check repairs what such
// a late write changed.
//
// On graceful shutdown (Run's context cancelled) the leader stops granting at
// once, calls BeforeRelease (bounded by RenewDeadline) and then releases the
// lock; a watching standby takes over within the time of one read and one
// write. If BeforeRelease overruns its bound, writes may still be in flight,
// so the lock is not released and standbys wait for the lease to expire.
// After a crash, a standby that watched the last renewal takes over
// LeaseDuration after it, which is at most LeaseDuration after the crash,
// or as soon as the kubelet reports the crash (below).
//
// # Takeover on evidence of the holder's death
//
// A leader that crashes (SIGKILL, OOM kill, panic, eviction) cannot
// release the lock, and waiting for its lease costs up to LeaseDuration.
// But the kubelet usually knows within a second that the process is gone.
// With Config.PodEvidence (flag --election-pod-evidence, on by default) a
// candidate takes the lock as soon as the API server shows that the
// holder's own process has ended, with a higher epoch as always:
//
//  1. The leader publishes its process beside the record: the annotation
//     ProcessAnnotationKey on the lock object holds a HolderProcess (Pod
//     namespace, name and UID, container name and container ID), written
//     in the same request as the record it belongs to and naming that
//     record's holder and epoch. The record itself stays client-go's
//     format. The leader finds its container in its own Pod's status
//     (Config.Self, from $POD_NAMESPACE, $POD_NAME, $CONTAINER_NAME): by
//     an exact match where it can (process://<pid> runtimes, a container
//     ID in its cgroup path, which also rules out every other ID), else
//     the running instance that started no earlier than a second before
//     this process. A status that lags a
//     restart still shows the previous instance running; that instance
//     started before the previous process died, so before ours, and is
//     refused (unless it lived for under a second: the one residual case,
//     which the exact matches close). Until the status shows this
//     process, nothing is published.
//  2. Candidates watch the Pod the published process names (field
//     selector metadata.name, in the lock's namespace only) and accept one
//     thing as evidence: the kubelet reporting that very container
//     instance (same Pod UID, container name and container ID) terminated,
//     as its state or as its last state before a restart. The evidence
//     must match the record as freshly read (same holder, same epoch, same
//     published process); the update is conditional as always.
//
// Why this is safe. A container ID names one instance: a runtime never
// restarts it (a restart is a new ID), so "terminated" is final for it.
// The kubelet reports a container terminated only after the runtime
// reported it exited, which is after the container's init process, our
// process, has exited and been reaped; a process that has exited sends no
// further requests (the kernel may still flush bytes it had already
// handed to a socket, see Limits). The identity in the record is unique
// per process and the published container belongs to that identity's
// term, so a report about an earlier instance of the same container (the
// one a restart replaced) cannot be taken for the holder's: its container
// ID differs. For the same reason a restartCount that rises after a
// candidate looked is not evidence: that restart may be the very one that
// started the current holder. The kubelet's synthetic terminated state
// for a container the runtime no longer knows (reason
// ContainerStatusUnknown) is refused too: it says the kubelet lost track,
// not that the process ended.
//
// A partitioned-but-alive leader is never mistaken for a dead one: while
// its node cannot reach the API server, its kubelet cannot report
// anything either, and nothing else reports container states. The node
// controller marks such Pods Ready=Unknown; a node that stopped
// reporting, NotReady, Unknown, a terminal phase set by a controller, or
// a network partition are all not evidence: those terms end by the lease,
// exactly as without this feature, with the margin argument above. A
// stale or lagging read can only show the report later, never earlier, so
// it delays a takeover and never causes one.
//
// A deleted Pod is evidence only through its last state: a graceful
// deletion completes (the kubelet deletes the object) only after the
// kubelet reported the containers terminated, so the watch shows that
// report, at the latest in the deleted object. A force delete (grace
// period 0) removes the object at once while the process may run on, on a
// node that may not even hear of it: a Pod that disappears, or is replaced
// by a new Pod of the same name (a new UID), without that report is not
// evidence. What a force delete costs: the takeover waits for the lease,
// counted from the last renewal of the still running holder, i.e. until
// the kubelet kills it plus up to LeaseDuration; the replacement Pod's
// replica stays a standby meanwhile. The simulator's evidence-takeover
// oracle checks that no takeover before the lease ever happens while the
// holder's process runs (node partition, late kubelet, force delete).
//
// Anything that makes the evidence unavailable falls back to the lease
// and is logged once per holder and reason: a holder that publishes no
// process (another controller, client-go, an older konductor, a leader
// that has not identified itself yet), an annotation for another term, a
// Pod in another namespace than the lock's, a Pod that cannot be found,
// or reading or watching pods being forbidden. Only pod status writers
// are trusted: whoever may update pods/status can forge a termination.
//
// RBAC: get and watch on pods in the lock's namespace (the watch asks for
// one Pod by name, so resourceNames can narrow it where Pod names are
// known, e.g. a StatefulSet's). --election-pod-evidence=false (or
// CONTROLLER_ELECTION_POD_EVIDENCE=false) turns the takeover and the
// publishing off; the pods rule is then not needed.
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
