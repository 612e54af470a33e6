// Package integration runs the real konductor controller (controller/manager)
// against a client-go fake clientset and several kongsim nodes, and checks
// the behaviour issue 3 promises end to end: every Kong converges on one
// configuration, changes propagate, a Kong restarted empty or edited behind
// the controller's back is repaired, a stalled Kong delays nobody else,
// broken objects and Kong rejections are reported on the offending object
// while the rest applies, and Ingress status follows the applied
// configuration.
//
// The library part is small: Kongs, a set of in-process kongsim nodes behind
// an in-memory network with fault switches (stall, unreachable, restart
// empty, stricter admission), and builders for the Kubernetes objects of an
// app. The specifications, the loopback tests against kongsim processes and
// the benchmarks live in the package's tests.
package integration
