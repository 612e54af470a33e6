// Package cluster runs a local Kubernetes control plane made of real
// binaries built from Go modules (etcd, kube-apiserver,
// kube-controller-manager and, if built, kube-scheduler; see
// hack/build-k8s.sh) on 127.0.0.1, so e2e suites and drills get a real API
// server, real controllers and real RBAC without Docker. Pods run as
// processes under the node agent (package node), each in its own network
// namespace (podnet); Services get ClusterIPs and DNS names (services).
//
// Every process the package starts carries a marker in its environment
// naming the cluster, and every cluster owns a state directory holding its
// owner's pid. A later Start, or Sweep, finds clusters whose owner died and
// removes what they left: processes, network namespaces, bridges and files.
package cluster
