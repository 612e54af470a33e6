// Package sim holds konductor's test worlds: the fake Kong (kongsim), the
// in-process fake API server with fault injection, the deterministic
// virtual-time world that runs the real controller code, and the local
// process cluster.
package sim
