package atc

import (
	"net/http"
	"testing"
)

// FuzzParse feeds arbitrary text to the parser: it must never panic, a
// failure must be a positioned SyntaxError, and whatever parses must
// validate or be refused cleanly and evaluate without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`http.host ~ r#"^[^.]+\.foo\.com$"#`,
		`http.path ^= "/a" && (http.method == "GET" || !(http.headers.x == "y"))`,
		`any(lower(http.headers.x_foo)) == "bar"`,
		`net.src.ip in 10.0.0.0/8 && net.dst.port >= 0x1F`,
		`http.path.segments.0_2 == "a/b"`,
		`!(`, `r#"`, `"\`, `a not in`, `x == -012`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("Parse(%q) error %T, want *SyntaxError", src, err)
			}
			if se.Offset < 0 || se.Offset > len(src) {
				t.Fatalf("Parse(%q) error offset %d outside the source", src, se.Offset)
			}
			_ = se.Error()
			return
		}
		if e.String() != src {
			t.Fatalf("String() = %q, want the source %q", e.String(), src)
		}
		if e.Validate(HTTPSchema) != nil {
			return
		}
		e.Match(&Request{Protocol: "http", Method: "GET", Host: "a.b", Path: "/x/y",
			Header: http.Header{"X": {"1", "2"}}, RawQuery: "a=1"})
	})
}
