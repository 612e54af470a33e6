// Package footprint measures the memory of the real konductor binary after
// it has synced a large cluster: 10k Ingresses, 10k Services, 10k
// EndpointSlices, and 10k KongConsumers each with a key-auth credential
// Secret (KONDUCTOR_FOOTPRINT_CONSUMERS=N changes the count, 0 leaves the
// CRD and the consumers out) on a real kube-apiserver (the local process cluster of
// package cluster), three minimal DB-less Kong stand-ins on loopback, and
// the binary built from cmd/konductor running as its own process with the
// flags a user would give it.
//
// The in-process heap test of sim/integration shares its process with a
// fake API server whose objects carry no managedFields; this package reads
// what an operator would see instead: VmRSS and VmHWM of the controller
// process and the Go heap it reports on /metrics.
//
// The package holds only tests. The measurement takes minutes (creating
// 30k objects, then 10k status writes at --apiserver-qps) and needs root
// and the control-plane binaries, so it runs only when asked:
//
//	KONDUCTOR_FOOTPRINT=1 go test -count=1 -timeout=90m -run TestFootprint10k -v ./sim/footprint/
//
// KONDUCTOR_FOOTPRINT_PPROF=<dir> starts the binary with --profiling and
// saves a heap profile at every reading. TestFootprint10k's comment lists the other
// settings.
package footprint
