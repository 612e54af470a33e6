// Package controller is konductor's production controller as a library:
// options, translation of Kubernetes objects into Kong configuration, Kong
// synchronisation, gateway discovery, leader election, status and metrics.
// It depends on none of the project's other modules.
package controller
