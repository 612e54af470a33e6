// Package behaviour checks Kubernetes Ingress semantics end to end through
// the kongsim proxy: Ingress objects are translated as the controller does,
// loaded into a kongsim node through POST /config, and judged only by what
// HTTP and HTTPS clients see — which backend answered, with which path, and
// which certificate the proxy served. The tables follow the Kubernetes
// Ingress API reference (path matching examples, host precedence, TLS,
// defaultBackend) and name each place where Kong's router differs from it.
package behaviour
