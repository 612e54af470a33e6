package atc

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestParseAndValidate(t *testing.T) {
	tests := []struct {
		name, src string
		wantErr   string // substring; "" for valid
	}{
		{"equals raw string", `http.host == r#"example.com"#`, ""},
		{"regex raw string with backslashes", `http.host ~ r#"^[^.]+\.foo\.com$"#`, ""},
		{"prefix and postfix", `http.path ^= "/api" && http.host =^ ".foo.com"`, ""},
		{"not parenthesised", `!(http.method == "GET") || http.path == "/"`, ""},
		{"nested parentheses", `((http.path == "/a") && (http.host == "x" || http.host == "y"))`, ""},
		{"transformations", `any(lower(http.headers.x_foo)) == "bar"`, ""},
		{"lower of any", `lower(any(http.headers.x_foo)) ~ "^b"`, ""},
		{"int compare", `net.dst.port >= 8000 && http.path.segments.len < 0x10`, ""},
		{"octal int", `net.dst.port == 0755`, ""},
		{"cidr", `net.src.ip in 10.0.0.0/8 && net.dst.ip not in fd00::/64`, ""},
		{"ip equals", `net.src.ip == 192.168.0.1`, ""},
		{"segments", `http.path.segments.0_2 == "a/b/c" && http.path.segments.1 == "b"`, ""},
		{"queries", `http.queries.page == "1"`, ""},
		{"contains", `http.path contains "x"`, ""},
		{"whitespace everywhere", "  http.path\n==\t\"/\"  ", ""},
		{"escapes in plain strings", `http.path == "/a\"b\\c\n"`, ""},
		{"net.port is amended", `net.port == 80`, ""},

		{"unknown field", `http.foo == "x"`, "Unknown LHS field"},
		{"bare headers prefix", `http.headers == "x"`, "Unknown LHS field"},
		{"string vs int", `http.path == 1`, "Type mismatch between the LHS and RHS values of predicate"},
		{"int vs string", `net.dst.port == "80"`, "Type mismatch"},
		{"in on strings", `http.host in "x"`, "In/NotIn operators only supports IP in CIDR"},
		{"in with plain address", `net.src.ip in 10.0.0.1`, "In/NotIn operators only supports IP in CIDR"},
		{"ip equals cidr", `net.src.ip == 10.0.0.0/8`, "Type mismatch"},
		{"regex on int", `net.dst.port ~ "8"`, "Regex operators only supports string operands"},
		{"lower on int", `lower(net.dst.port) == 1`, "lower-case transformation function only supported with String type fields"},
		{"prefix on int", `net.dst.port ^= 8`, "Prefix/Postfix operators only supports string operands"},
		{"greater on strings", `http.path > "a"`, "Greater/GreaterOrEqual/Less/LessOrEqual operators only supports integer operands"},
		{"illformed segments", `http.path.segments.2_1 == "x"`, "illformed http.path.segments.* field"},
		{"leading zero segment", `http.path.segments.01 == "x"`, "illformed"},

		{"single equals", `http.path = "/"`, "expected binary_operator"},
		{"unknown transformation", `upper(http.path) == "/"`, "unknown transformation function: upper"},
		{"backslash escape", `http.host ~ "^a\.b$"`, "expected str_esc"},
		{"regex needs a string", `http.path ~ 5`, "regex operator can only be used with String operands"},
		{"bad regex", `http.path ~ r#"(a"#`, "missing closing )"},
		{"not without parentheses", `!http.path == "/"`, "expected parenthesised_expression"},
		{"unclosed parenthesis", `(http.path == "/"`, "expected logical_operator"},
		{"dangling and", `http.path == "/" &&`, "expected term"},
		{"unterminated string", `http.path == "/`, "expected rhs"},
		{"unterminated raw string", `http.path == r#"/`, "expected rhs"},
		{"trailing junk", `http.path == "/" x`, "expected logical_operator"},
		{"empty", ``, "expected term"},
		{"bad address", `net.src.ip == 300.1.1.1`, "invalid IP address syntax"},
		{"int overflow", `net.dst.port == 99999999999999999999`, "number too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.src, HTTPSchema)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Compile(%q): %v", tt.src, err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Compile(%q) succeeded, want error %q", tt.src, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Compile(%q) = %v, want it to contain %q", tt.src, err, tt.wantErr)
			}
		})
	}
}

func TestSyntaxErrorPosition(t *testing.T) {
	_, err := Parse(`http.path = "/"`)
	want := " --> 1:11\n  |\n1 | http.path = \"/\"\n  |           ^---\n  |\n  = expected binary_operator"
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
}

// || binds tighter than && in the atc-router's grammar.
func TestPrecedence(t *testing.T) {
	e, err := Compile(`http.method == "POST" && http.path == "/a" || http.path == "/b"`, HTTPSchema)
	if err != nil {
		t.Fatal(err)
	}
	// Read as POST && (/a || /b): a GET to /b does not match.
	if _, ok := e.Match(&Request{Method: "GET", Path: "/b"}); ok {
		t.Error("GET /b matched: && must bind looser than ||")
	}
	if _, ok := e.Match(&Request{Method: "POST", Path: "/b"}); !ok {
		t.Error("POST /b did not match")
	}
}

func TestMatch(t *testing.T) {
	base := func() *Request {
		return &Request{Protocol: "http", Method: "GET", Host: "bar.foo.com", Path: "/api/v1/users",
			Header: http.Header{"X-Foo": {"Bar"}, "X-Multi": {"a", "b"}}, RawQuery: "page=2&tag=x&tag=y",
			SrcIP: netip.MustParseAddr("10.1.2.3"), DstPort: 8000, SrcPort: 51000}
	}
	tests := []struct {
		name, src string
		mod       func(*Request)
		want      bool
		wantPath  string
	}{
		{"one-label wildcard", `http.host ~ r#"^[^.]+\.foo\.com$"#`, nil, true, ""},
		{"one-label wildcard refuses two labels", `http.host ~ r#"^[^.]+\.foo\.com$"#`, func(r *Request) { r.Host = "baz.bar.foo.com" }, false, ""},
		{"one-label wildcard refuses the bare domain", `http.host ~ r#"^[^.]+\.foo\.com$"#`, func(r *Request) { r.Host = "foo.com" }, false, ""},
		{"postfix is any depth", `http.host =^ ".foo.com"`, func(r *Request) { r.Host = "a.b.foo.com" }, true, ""},
		{"host is case-sensitive", `http.host == "bar.foo.com"`, func(r *Request) { r.Host = "BAR.foo.com" }, false, ""},
		{"lower makes it insensitive", `lower(http.host) == "bar.foo.com"`, func(r *Request) { r.Host = "BAR.foo.com" }, true, ""},
		{"path prefix records the prefix", `http.path ^= "/api/"`, nil, true, "/api/"},
		{"path equals", `http.path == "/api/v1/users"`, nil, true, "/api/v1/users"},
		{"path regex records the match", `http.path ~ r#"^/api/v\d+"#`, nil, true, "/api/v1"},
		{"regex is unanchored", `http.path ~ "users"`, nil, true, "users"},
		{"last path predicate wins", `(http.path ^= "/nope" || http.path ^= "/api") && http.path ^= "/api/v1"`, nil, true, "/api/v1"},
		{"not", `!(http.method == "POST")`, nil, true, ""},
		{"not equals", `http.method != "POST"`, nil, true, ""},
		{"missing header never matches, even !=", `http.headers.x_none != "a"`, nil, false, ""},
		{"header by underscore name", `http.headers.x_foo == "Bar"`, nil, true, ""},
		{"header values are case-sensitive", `http.headers.x_foo == "bar"`, nil, false, ""},
		{"all values must match", `http.headers.x_multi == "a"`, nil, false, ""},
		{"any value with any()", `any(http.headers.x_multi) == "b"`, nil, true, ""},
		{"all values match a regex", `http.headers.x_multi ~ "^[ab]$"`, nil, true, ""},
		{"query", `http.queries.page == "2"`, nil, true, ""},
		{"query any", `any(http.queries.tag) == "y"`, nil, true, ""},
		{"protocol", `net.protocol == "https"`, nil, false, ""},
		{"dst port", `net.dst.port == 8000 && net.src.port > 50000`, nil, true, ""},
		{"src ip in cidr", `net.src.ip in 10.0.0.0/8`, nil, true, ""},
		{"src ip not in cidr", `net.src.ip not in 10.0.0.0/8`, nil, false, ""},
		{"segments", `http.path.segments.len == 3 && http.path.segments.1 == "v1" && http.path.segments.0_1 == "api/v1"`, nil, true, ""},
		{"segment range past the end", `http.path.segments.1_9 == "v1/users"`, nil, true, ""},
		{"segment past the end has no value", `http.path.segments.7 != "x"`, nil, false, ""},
		{"no sni on plain http", `tls.sni != "x"`, nil, false, ""},
		{"contains", `http.host contains "foo"`, nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.src, HTTPSchema)
			if err != nil {
				t.Fatal(err)
			}
			r := base()
			if tt.mod != nil {
				tt.mod(r)
			}
			res, ok := e.Match(r)
			if ok != tt.want {
				t.Fatalf("Match = %v, want %v", ok, tt.want)
			}
			if ok && res.Path != tt.wantPath {
				t.Errorf("matched path %q, want %q", res.Path, tt.wantPath)
			}
		})
	}
}

func TestCaptures(t *testing.T) {
	e, err := Compile(`http.path ~ r#"^/u/(?P<id>\d+)"#`, HTTPSchema)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := e.Match(&Request{Path: "/u/42/x"})
	if !ok || len(res.Captures) != 2 || res.Captures[1] != "42" || res.CaptureNames[1] != "id" {
		t.Fatalf("captures %q names %q ok %v", res.Captures, res.CaptureNames, ok)
	}
}

func TestStreamSchemaHasNoHTTPFields(t *testing.T) {
	if _, err := Compile(`http.path == "/"`, StreamSchema); err == nil || err.Error() != msgUnknownLHS {
		t.Fatalf("err %v, want %q", err, msgUnknownLHS)
	}
}

func TestHostKeys(t *testing.T) {
	tests := []struct {
		src  string
		want []HostKey // nil: not indexable
	}{
		{`http.host == "a.com" && http.path ^= "/"`, []HostKey{{Value: "a.com"}}},
		{`(lower(http.host) == r#"a.com"# || lower(http.host) ~ r#"^[^.]+\.foo\.com$"#) && (http.path ^= "/")`,
			[]HostKey{{Lower: true, Value: "a.com"}, {Lower: true, OneLabel: true, Value: ".foo.com"}}},
		{`http.path ^= "/" && http.host ~ r#"^[^.]+\.x-y\.io$"#`, []HostKey{{OneLabel: true, Value: ".x-y.io"}}},
		{`http.host == "a.com" || http.path ^= "/"`, nil},
		{`http.host =^ ".foo.com"`, nil},
		{`http.host ~ "^a.*$"`, nil},
		{`!(http.host == "a.com")`, nil},
		{`http.path ^= "/"`, nil},
	}
	for _, tt := range tests {
		e, err := Compile(tt.src, HTTPSchema)
		if err != nil {
			t.Fatal(err)
		}
		keys, ok := e.HostKeys()
		if ok != (tt.want != nil) || fmt.Sprint(keys) != fmt.Sprint(tt.want) {
			t.Errorf("%s: keys %v ok %v, want %v", tt.src, keys, ok, tt.want)
		}
	}
}
