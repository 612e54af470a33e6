//go:build tools

// Package tools records the command hack/build-metrics.sh builds, so go mod
// tidy keeps its requirements.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
