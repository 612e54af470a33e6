// Package harness holds what the e2e suite needs besides e2e-framework
// itself: a cluster provider for kind built on kind's Go library, Docker
// image builds, a way to reach the Kong proxy Service from the test process
// on either cluster, a bounded request loop that counts failures, and
// reading the leader from the election lock.
//
// It carries no build tag, so `make test` compiles, vets and unit-tests it;
// the suite that drives real clusters lives in package suite behind the
// "e2e" build tag.
package harness
