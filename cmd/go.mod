module konductor.dev/cmd

go 1.26.8

require (
	konductor.dev/chaos v0.0.0
	konductor.dev/controller v0.0.0
	konductor.dev/e2e v0.0.0
	konductor.dev/sim v0.0.0
)

require (
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/kong/go-kong v0.78.0 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/spf13/pflag v1.1.0 // indirect
	k8s.io/client-go v0.37.2 // indirect
	k8s.io/klog/v2 v2.140.0 // indirect
)

replace konductor.dev/controller => ../controller

replace konductor.dev/sim => ../sim

replace konductor.dev/chaos => ../chaos

replace konductor.dev/e2e => ../e2e
