package declarative

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kong/go-kong/kong"
)

// plain has Config's fields but not its methods, so encoding/json renders it
// by reflection: the reference the fast encoder must match.
type plain Config

func reference(t *testing.T, c *Config) []byte {
	t.Helper()
	b, err := json.Marshal((*plain)(c))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertSameAsStdlib(t *testing.T, c *Config) {
	t.Helper()
	got, err := c.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := reference(t, c); !bytes.Equal(got, want) {
		t.Fatalf("fast encoder differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

// awkward exercises every escaping rule of encoding/json.
const awkward = "a<b>&c\"d\\e\n\r\t\b\f\x01\x1f é \u2028\u2029 \xff end"

// fill sets every field reachable from v (a pointer to a struct) to a
// non-zero value, so a field the encoder forgets shows up as a difference.
// Nested entity pointers are filled one level deep.
func fill(v reflect.Value, depth int) {
	v = v.Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		fillValue(f, depth)
	}
}

func fillValue(f reflect.Value, depth int) {
	switch f.Kind() {
	case reflect.Struct:
		fill(f.Addr(), depth)
	case reflect.Pointer:
		if depth > 1 {
			return
		}
		p := reflect.New(f.Type().Elem())
		fillValue(p.Elem(), depth+1)
		f.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(f.Type(), 2, 2)
		fillValue(s.Index(0), depth)
		if s.Index(1).Kind() != reflect.Pointer { // a nil element renders as null
			fillValue(s.Index(1), depth)
		}
		f.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(f.Type())
		for _, k := range []string{"b", "a"} {
			val := reflect.New(f.Type().Elem()).Elem()
			fillValue(val, depth)
			m.SetMapIndex(reflect.ValueOf(k), val)
		}
		f.Set(m)
	case reflect.String:
		f.SetString(awkward)
	case reflect.Bool:
		f.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		f.SetInt(-42)
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		f.SetUint(42)
	case reflect.Float64, reflect.Float32:
		f.SetFloat(1.5)
	}
}

func TestEncoderMatchesEncodingJSON(t *testing.T) {
	t.Run("empty", func(t *testing.T) { assertSameAsStdlib(t, New()) })

	t.Run("every field set", func(t *testing.T) {
		c := New()
		fill(reflect.ValueOf(c), 0)
		for _, s := range c.Services {
			if s != nil && len(s.Routes) == 0 {
				t.Fatal("filler did not reach nested routes")
			}
		}
		assertSameAsStdlib(t, c)
	})

	t.Run("entities with no fields set", func(t *testing.T) {
		c := New()
		c.Services = []*Service{{Routes: []*kong.Route{{}}}, nil}
		c.Upstreams = []*Upstream{{Targets: []*kong.Target{{}}}}
		c.Certificates = []*Certificate{{SNIs: []*kong.SNI{{}}}}
		assertSameAsStdlib(t, c)
	})

	t.Run("shared and overlapping tag slices", func(t *testing.T) {
		tags := kong.StringSlice("k8s-name:a", "k8s-kind:Service", "<&>")
		c := New()
		c.Services = []*Service{
			{Service: kong.Service{Tags: tags}, Routes: []*kong.Route{{Tags: tags}, {Tags: tags[:2]}, {Tags: tags[1:]}}},
			{Service: kong.Service{Tags: tags[:2]}},
		}
		c.Upstreams = []*Upstream{{Upstream: kong.Upstream{Tags: tags}, Targets: []*kong.Target{{Tags: tags[:1]}}}}
		assertSameAsStdlib(t, c)
	})

	t.Run("empty but non-nil collections are omitted", func(t *testing.T) {
		c := New()
		c.Services = []*Service{{Service: kong.Service{Tags: []*string{}}, Routes: []*kong.Route{}}}
		c.Services[0].Routes = append(c.Services[0].Routes, &kong.Route{Headers: map[string][]string{}, Hosts: []*string{}})
		assertSameAsStdlib(t, c)
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", awkward, "\u007f\u0080", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// bigConfig has enough services to be rendered by two goroutines. Long
// names in the first services (or in the upstreams) make the first (or the
// second) part outgrow its expected size.
func bigConfig(longHead, longTail bool) *Config {
	long := strings.Repeat("x", 1500)
	c := New()
	n := parallelMinServices
	tags := kong.StringSlice("k8s-name:a", "<tag>")
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		upstream := name + ".svc"
		if longHead && i < n/4 {
			name += long
		}
		if longTail {
			upstream += long
		}
		c.Services = append(c.Services, &Service{
			Service: kong.Service{Name: kong.String(name), Port: kong.Int(80), Tags: tags},
			Routes:  []*kong.Route{{Name: kong.String(name + ".r"), Paths: kong.StringSlice("/a", "~/b$"), Tags: tags}},
		})
		c.Upstreams = append(c.Upstreams, &Upstream{
			Upstream: kong.Upstream{Name: kong.String(upstream), Tags: tags},
			Targets:  []*kong.Target{{Target: kong.String("10.0.0.1:80"), Weight: kong.Int(100), Tags: tags}},
		})
	}
	c.Services[3] = nil
	return c
}

func TestLargeDocumentsRenderInTwoPartsAlike(t *testing.T) {
	for _, tc := range []struct {
		name               string
		longHead, longTail bool
	}{{"as expected", false, false}, {"head outgrows its part", true, false}, {"tail outgrows its part", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := bigConfig(tc.longHead, tc.longTail)
			split, headHint, tailHint := c.split(true)
			if split == 0 || split == len(c.Services) {
				t.Fatalf("split = %d of %d services: not rendered in two parts", split, len(c.Services))
			}
			head := len(c.appendHead(&encoder{}, nil, split))
			tail := len(c.appendTail(&encoder{}, nil, split))
			if head > headHint != tc.longHead || tail > tailHint != tc.longTail {
				t.Fatalf("head %d bytes (expected %d), tail %d (expected %d): not the case under test", head, headHint, tail, tailHint)
			}
			got, err := c.marshal(true)
			if err != nil {
				t.Fatal(err)
			}
			if want := reference(t, c); !bytes.Equal(got, want) {
				t.Fatalf("two-part rendering differs from encoding/json")
			}
		})
	}
}
