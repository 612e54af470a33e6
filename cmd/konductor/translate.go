package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"

	"konductor.dev/controller/translate"
)

// runTranslate is "konductor translate -f <manifests.yaml>": it translates
// a bundle of manifests without a cluster, prints the Kong declarative
// configuration on stdout and the per-object errors on stderr. Exit status:
// 0 translated cleanly, 1 translated with per-object errors, 2 the bundle
// or the command line could not be read.
func runTranslate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("konductor translate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "the manifests to translate: a multi-document YAML file, or - for stdin")
	output := fs.String("o", "yaml", "output format: yaml or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: konductor translate -f <manifests.yaml> [-o yaml|json]")
		fmt.Fprintln(stderr, "Prints the Kong declarative configuration for Ingresses, Services, EndpointSlices,")
		fmt.Fprintln(stderr, "Secrets, KongPlugins and KongClusterPlugins, and the problems found, without a cluster.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" || fs.NArg() > 0 || (*output != "yaml" && *output != "json") {
		fs.Usage()
		return 2
	}
	var raw []byte
	var err error
	if *file == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(*file)
	}
	if err != nil {
		fmt.Fprintf(stderr, "konductor translate: %v\n", err)
		return 2
	}
	objs, err := translate.DecodeYAML(raw)
	if err != nil {
		fmt.Fprintf(stderr, "konductor translate: %s: %v\n", *file, err)
		return 2
	}
	res := translate.Translate(objs.Snapshot(), translate.Options{})
	var out bytes.Buffer
	if *output == "json" {
		err = json.Indent(&out, res.Body, "", "  ")
		out.WriteByte('\n')
	} else {
		var y []byte
		if y, err = yaml.JSONToYAML(res.Body); err == nil {
			out.Write(y)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "konductor translate: rendering: %v\n", err)
		return 2
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return 2
	}
	for _, e := range res.Errors {
		fmt.Fprintln(stderr, e.Error())
	}
	if len(res.Errors) > 0 {
		return 1
	}
	return 0
}
