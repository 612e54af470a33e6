// Package translate turns a snapshot of Kubernetes objects (Ingresses and the
// Services, EndpointSlices and TLS Secrets they reference) into a Kong
// declarative configuration.
//
// Translate is a pure function: no I/O, no clock, no randomness. The same
// snapshot, in any input order, yields a byte-identical Body and the same
// Hash, so callers can compare hashes to decide whether to push.
//
// Broken input never fails the whole translation. A path with a missing
// Service, an invalid path, a conflicting rule or a bad annotation is left
// out (or defaulted) and reported as an ObjectError naming the object and the
// field; everything else is still translated. Every Kong entity carries tags
// naming the Kubernetes object it came from, so Kong's own errors can be
// mapped back to objects with ObjectFromTags.
//
// Routes follow Ingress semantics rather than Kong's defaults: the request
// path and Host header reach the backend unchanged (strip_path false,
// preserve_host true) unless konghq.com annotations say otherwise. Conflicts
// (the same host, path and pathType in two Ingresses, two default backends,
// an SNI served by two Secrets) go to the oldest Ingress.
//
// Naming (all names are stable and ids are UUIDv5 of the entity name):
//
//	service   <namespace>.<service>.<port>
//	route     <namespace>.<ingress>.<rule>.<path>   (default backend: <namespace>.<ingress>.default)
//	upstream  <service>.<namespace>.<port>.svc      (the Kong service's host)
//	target    <ip>:<endpoint port>
package translate
