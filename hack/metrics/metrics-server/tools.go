//go:build tools

// Package tools records the command hack/build-metrics.sh builds, so go mod
// tidy keeps its requirements.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
