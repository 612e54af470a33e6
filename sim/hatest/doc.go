// Package hatest holds konductor's high-availability integration tests:
// three real controller replicas (controller/manager) share one simulated
// API server (sim/apiserver: optimistic concurrency on the lock, per-client
// partitions) and configure kongsim nodes through an in-memory network.
// The kongsim audits are the judge: every accepted change carries the
// writer's identity and fencing epoch, so "one writer at a time" and
// "epochs never go backwards" are read from what Kong actually accepted.
//
// The DB-less specifications and the failover measurements run under
// testing/synctest with the default timings (15s lease, 10s renew
// deadline, 2s retry): virtual time makes them fast and exact. The DB-mode
// specification runs in real time against PostgreSQL (two kongsim nodes on
// sim/kong/pgstore) with short lease timings, since a database connection
// cannot live inside a synctest bubble. TestRealAPIServerSingleWriterAndHandover
// repeats the single-writer, graceful-handover and crash-failover checks
// against a real etcd and kube-apiserver (sim/cluster), in real time.
package hatest
