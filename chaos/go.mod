module konductor.dev/chaos

go 1.26.8

replace konductor.dev/controller => ../controller

replace konductor.dev/sim => ../sim

require go.yaml.in/yaml/v3 v3.0.4 // indirect
