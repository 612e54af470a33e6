//go:build tools

// Package tools records the commands hack/build-metrics.sh builds, so go mod
// tidy keeps their requirements.
package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
