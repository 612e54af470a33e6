// Command konductor-chaos runs konductor's HA drills (chaos/drills) against
// a cluster reachable by kubeconfig and reports what they proved; see
// konductor.dev/chaos/cli.
package main

import (
	"os"

	"konductor.dev/chaos/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
