package translate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"konductor.dev/controller/translate/declarative"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// golden is what a golden file holds: the document and the per-object
// outcome. Body and Hash are derived from Config and checked separately.
type golden struct {
	Config     *Config       `json:"config"`
	Errors     []ObjectError `json:"errors"`
	Translated []ObjectRef   `json:"translated"`
}

// TestGolden translates every testdata/*.yaml snapshot and compares the
// result with testdata/*.golden.json. Run with -update to accept changes.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no testdata/*.yaml inputs (err %v)", err)
	}
	for _, input := range inputs {
		name := strings.TrimSuffix(filepath.Base(input), ".yaml")
		t.Run(name, func(t *testing.T) {
			snap := loadSnapshot(t, input)
			var opts Options
			if strings.HasSuffix(name, ".expressions") {
				opts.RouterFlavor = RouterFlavorExpressions
			}
			res := Translate(snap, opts)
			checkInvariants(t, snap, opts, res)

			got, err := json.MarshalIndent(golden{res.Config, res.Errors, res.Translated}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			goldenPath := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update to accept):\n%s", goldenPath, lineDiff(string(want), string(got)))
			}
		})
	}
}

// checkInvariants holds for every translation, whatever the input.
func checkInvariants(t *testing.T, snap Snapshot, opts Options, res Result) {
	t.Helper()
	body, err := res.Config.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, res.Body) {
		t.Errorf("Body is not the marshalled Config")
	}
	if sum := sha256.Sum256(res.Body); hex.EncodeToString(sum[:]) != res.Hash {
		t.Errorf("Hash %s is not the sha256 of Body", res.Hash)
	}

	// Every entity names its source object and is marked as ours.
	names := map[string]bool{}
	ids := map[string]bool{}
	routed := map[ObjectRef]bool{}
	entity := func(kind, name string, id *string, tags []*string) ObjectRef {
		t.Helper()
		var plain []string
		for _, tag := range tags {
			plain = append(plain, *tag)
		}
		ref, ok := ObjectFromTags(plain)
		if !ok || !strings.Contains(strings.Join(plain, ","), ManagedByTag) {
			t.Errorf("%s %s: tags %v do not name an object or lack %s", kind, name, plain, ManagedByTag)
		}
		if names[kind+"/"+name] {
			t.Errorf("duplicate %s name %q", kind, name)
		}
		names[kind+"/"+name] = true
		if id == nil || ids[*id] {
			t.Errorf("%s %s: missing or duplicate id", kind, name)
		} else {
			ids[*id] = true
		}
		return ref
	}
	for _, s := range res.Config.Services {
		entity("service", *s.Name, s.ID, s.Tags)
		for _, r := range s.Routes {
			routed[entity("route", *r.Name, r.ID, r.Tags)] = true
		}
	}
	for _, u := range res.Config.Upstreams {
		entity("upstream", *u.Name, u.ID, u.Tags)
		for _, tg := range u.Targets {
			entity("target", *u.Name+"/"+*tg.Target, tg.ID, tg.Tags)
		}
	}
	for _, c := range res.Config.Certificates {
		entity("certificate", *c.ID, c.ID, c.Tags)
		for _, sni := range c.SNIs {
			entity("sni", *sni.Name, sni.ID, sni.Tags)
		}
	}
	for _, c := range res.Config.Consumers {
		entity("consumer", *c.ID, c.ID, c.Tags)
		for _, list := range [][]*declarative.Credential{c.KeyAuthCredentials, c.BasicAuthCredentials, c.JWTSecrets, c.ACLs, c.HMACAuthCredentials} {
			for _, cred := range list {
				entity("credential", *cred.ID, cred.ID, cred.Tags)
			}
		}
	}
	// Plugins name a parent that exists, and Kong's rule holds: one plugin
	// of a name per parent, and instance names unique.
	instances := map[string]bool{}
	for _, p := range res.Config.Plugins {
		parent := "global"
		for _, ref := range []*string{p.Route, p.Service, p.Consumer} {
			if ref != nil {
				if !ids[*ref] {
					t.Errorf("plugin %s refers to %s, which is not in the document", *p.ID, *ref)
				}
				parent = *ref
			}
		}
		entity("plugin", parent+"/"+*p.Name, p.ID, p.Tags)
		if p.InstanceName != nil {
			if instances[*p.InstanceName] {
				t.Errorf("duplicate plugin instance_name %q", *p.InstanceName)
			}
			instances[*p.InstanceName] = true
		}
	}
	// Translated lists exactly the Ingresses that have routes.
	if len(routed) != len(res.Translated) {
		t.Errorf("Translated %v, but routes come from %v", res.Translated, routed)
	}
	for _, ref := range res.Translated {
		if !routed[ref] {
			t.Errorf("%s is in Translated without a route", ref)
		}
	}

	// Any input order gives the same bytes and the same errors.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		again := Translate(shuffled(rng, snap), opts)
		if !bytes.Equal(again.Body, res.Body) {
			t.Fatalf("Body depends on input order")
		}
		if fmt.Sprint(again.Errors) != fmt.Sprint(res.Errors) || fmt.Sprint(again.Translated) != fmt.Sprint(res.Translated) {
			t.Fatalf("Errors or Translated depend on input order")
		}
	}
}

func shuffled(rng *rand.Rand, s Snapshot) Snapshot {
	out := Snapshot{
		Ingresses:      append([]*networkingv1.Ingress(nil), s.Ingresses...),
		Services:       append([]*Service(nil), s.Services...),
		EndpointSlices: append([]*EndpointSlice(nil), s.EndpointSlices...),
		Secrets:        append([]*corev1.Secret(nil), s.Secrets...),
		Plugins:        append([]*Plugin(nil), s.Plugins...),
		Consumers:      append([]*Consumer(nil), s.Consumers...),
	}
	rng.Shuffle(len(out.Consumers), func(i, j int) { out.Consumers[i], out.Consumers[j] = out.Consumers[j], out.Consumers[i] })
	rng.Shuffle(len(out.Plugins), func(i, j int) { out.Plugins[i], out.Plugins[j] = out.Plugins[j], out.Plugins[i] })
	rng.Shuffle(len(out.Ingresses), func(i, j int) { out.Ingresses[i], out.Ingresses[j] = out.Ingresses[j], out.Ingresses[i] })
	rng.Shuffle(len(out.Services), func(i, j int) { out.Services[i], out.Services[j] = out.Services[j], out.Services[i] })
	rng.Shuffle(len(out.EndpointSlices), func(i, j int) {
		out.EndpointSlices[i], out.EndpointSlices[j] = out.EndpointSlices[j], out.EndpointSlices[i]
	})
	rng.Shuffle(len(out.Secrets), func(i, j int) { out.Secrets[i], out.Secrets[j] = out.Secrets[j], out.Secrets[i] })
	return out
}

// loadSnapshot reads one of translate's golden input bundles.
func loadSnapshot(t *testing.T, path string) Snapshot {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := DecodeYAML(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs.Snapshot()
}

// lineDiff shows the first differing lines, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 20; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}
