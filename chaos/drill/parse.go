package drill

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Limits that keep a drill's load bounded (rate × duration) whatever the
// file says.
const (
	MaxRate        = 2000        // requests per second of one traffic probe
	MaxRequests    = 1_000_000   // rate × planned duration, over all traffic probes
	MaxRepeat      = 2000        // repetitions of the method
	MaxPause       = time.Minute // longest apiserver-pause
	DefaultTimeout = 30 * time.Minute
)

// Overlays and Components are the deploy/ pieces a target may name.
var (
	Overlays   = []string{"dbless-sidecar", "dbless-gateway-discovery", "postgres"}
	Components = []string{"kongsim", "hpa", "pdb"}
	Providers  = []Provider{ProviderLocal, ProviderKind, ProviderAny}
)

// Error is one problem in a drill file, at a position and field path.
type Error struct {
	Pos  Position
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, e.Path, e.Msg)
}

// ParseFile reads and parses one drill file.
func ParseFile(path string) (*Drill, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, raw)
}

// ParseDir parses every *.yaml drill in dir, sorted by file name; it
// returns every file's errors, not just the first.
func ParseDir(dir string) ([]*Drill, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var drills []*Drill
	var errs []error
	for _, f := range files {
		d, err := ParseFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		drills = append(drills, d)
	}
	if len(files) == 0 {
		errs = append(errs, fmt.Errorf("%s: no *.yaml drill files", dir))
	}
	return drills, errors.Join(errs...)
}

// Parse decodes a drill strictly and validates it. file names the source in
// errors. Every error found is returned (joined), each as an *Error.
func Parse(file string, raw []byte) (*Drill, error) {
	p := &parser{file: file, lines: map[string]Position{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, &Error{Pos: Position{File: file}, Msg: "not YAML: " + err.Error()}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &Error{Pos: Position{File: file}, Msg: "empty drill file"}
	}
	d := &Drill{}
	p.decode(doc.Content[0], "", reflect.ValueOf(d).Elem())
	if len(p.errs) == 0 {
		p.validate(d)
	}
	if len(p.errs) > 0 {
		errs := make([]error, len(p.errs))
		for i, e := range p.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	d.File = file
	return d, nil
}

type parser struct {
	file  string
	lines map[string]Position // field path → where its value was written
	errs  []*Error
}

func (p *parser) errAt(n *yaml.Node, path, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: Position{File: p.file, Line: n.Line, Column: n.Column}, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// errPath reports a problem found after decoding, at the position recorded
// for path (or its nearest recorded parent).
func (p *parser) errPath(path, format string, args ...any) {
	pos := Position{File: p.file}
	for q := path; ; {
		if at, ok := p.lines[q]; ok {
			pos = at
			break
		}
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			break
		}
		q = q[:i]
	}
	p.errs = append(p.errs, &Error{Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

var durationType = reflect.TypeFor[Duration]()

// enumValues lists the values a string-kinded type accepts.
func enumValues(t reflect.Type) []string {
	var vals []string
	add := func(xs any) {
		v := reflect.ValueOf(xs)
		for i := range v.Len() {
			vals = append(vals, v.Index(i).String())
		}
	}
	switch t {
	case reflect.TypeFor[ProbeType]():
		add(ProbeTypes)
	case reflect.TypeFor[Phase]():
		add(Phases)
	case reflect.TypeFor[FaultKind]():
		add(FaultKinds)
	case reflect.TypeFor[SelectorMode]():
		add(SelectorModes)
	case reflect.TypeFor[RollbackKind]():
		add(RollbackKinds)
	case reflect.TypeFor[Provider]():
		add(Providers)
	}
	return vals
}

// decode fills v from n strictly, recording errors with their path.
func (p *parser) decode(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		p.errAt(n, path, "YAML anchors and aliases are not supported in drill files")
		return
	}
	p.lines[path] = Position{File: p.file, Line: n.Line, Column: n.Column}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an explicit null leaves the default
	}
	t := v.Type()
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			p.errAt(n, path, "want a duration such as 500ms, 2s or 1m")
			return
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil || d < 0 {
			p.errAt(n, path, "%q is not a non-negative duration such as 500ms, 2s or 1m", n.Value)
			return
		}
		v.SetInt(int64(d))
		return
	case t.Kind() == reflect.Pointer:
		e := reflect.New(t.Elem())
		p.decode(n, path, e.Elem())
		v.Set(e)
		return
	case t.Kind() == reflect.Struct:
		p.decodeStruct(n, path, v)
		return
	case t.Kind() == reflect.Slice:
		items := n.Content
		if n.Kind == yaml.ScalarNode {
			items = []*yaml.Node{n} // a single value stands for a list of one
		} else if n.Kind != yaml.SequenceNode {
			p.errAt(n, path, "want a list")
			return
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			p.decode(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
		}
		v.Set(s)
		return
	}
	if n.Kind != yaml.ScalarNode {
		p.errAt(n, path, "want a single value, not a %s", kindName(n.Kind))
		return
	}
	switch t.Kind() {
	case reflect.String:
		if n.Tag != "!!str" {
			p.errAt(n, path, "want a string, got %s (quote it)", n.Value)
			return
		}
		if vals := enumValues(t); vals != nil && !slices.Contains(vals, n.Value) {
			p.errAt(n, path, "unknown %s %q (known: %s)", typeWord(t), n.Value, strings.Join(vals, ", "))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int
		if n.Tag != "!!int" || n.Decode(&i) != nil {
			p.errAt(n, path, "want an integer, got %q", n.Value)
			return
		}
		v.SetInt(int64(i))
	case reflect.Bool:
		var b bool
		if n.Tag != "!!bool" || n.Decode(&b) != nil {
			p.errAt(n, path, "want true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	default:
		p.errAt(n, path, "cannot decode into %s", t)
	}
}

func (p *parser) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		p.errAt(n, path, "want a mapping of fields, not a %s", kindName(n.Kind))
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errAt(k, path, "a field name must be a plain string")
			continue
		}
		fp := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			p.errAt(k, fp, "unknown field %q (known here: %s)", k.Value, strings.Join(names, ", "))
			continue
		}
		if seen[k.Value] {
			p.errAt(k, fp, "field given twice")
			continue
		}
		seen[k.Value] = true
		p.decode(val, fp, v.Field(idx))
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "document"
}

func typeWord(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[ProbeType]():
		return "probe type"
	case reflect.TypeFor[Phase]():
		return "phase"
	case reflect.TypeFor[FaultKind]():
		return "fault kind"
	case reflect.TypeFor[SelectorMode]():
		return "selector mode"
	case reflect.TypeFor[RollbackKind]():
		return "rollback action"
	case reflect.TypeFor[Provider]():
		return "provider"
	}
	return "value"
}
