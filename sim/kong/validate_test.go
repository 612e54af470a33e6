package kong

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, v := range []any{
		nil, true, false, 0.0, -1.0, 60000.0, 1.5, 1e21, 1e-7, 123456789012345.0,
		"", "plain", "quote\" back\\slash", "ctl\x00\x01\x1f\n\r\t", "<html>&amp;", "ünïcødé ✓", "bad\xffutf8", "line\u2028sep",
		[]any{}, []any{"a", 1.0, nil, map[string]any{"z": 1.0, "a": []any{}}},
		map[string]any{}, map[string]any{"b": "x", "a": map[string]any{"c": nil}},
	} {
		got := appendJSON(nil, v)
		if !json.Valid(got) {
			t.Errorf("%#v encodes to invalid JSON %s", v, got)
			continue
		}
		want, _ := json.Marshal(v)
		var a, b any
		_ = json.Unmarshal(got, &a)
		_ = json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%#v: appendJSON %s, encoding/json %s", v, got, want)
		}
	}
}

func TestFieldChecks(t *testing.T) {
	for _, c := range []struct {
		name  string
		check func(any) string
		in    string
		ok    bool
	}{
		{"host", checkHost, "echo.default.80.svc", true},
		{"host", checkHost, "10.0.0.1", true},
		{"host", checkHost, "-bad.example", false},
		{"host", checkHost, "a..b", false},
		{"host", checkHost, "under_score.ok", true},
		{"route host", checkRouteHost, "*.example.com", true},
		{"route host", checkRouteHost, "example.*", true},
		{"route host", checkRouteHost, "ex*ample.com", false},
		{"route host", checkRouteHost, "*.*.com", false},
		{"route host", checkRouteHost, "example.com:8080", true},
		{"route path", checkRoutePath, "/foo", true},
		{"route path", checkRoutePath, "~/foo/(?<id>\\d+)$", true},
		{"route path", checkRoutePath, "~/(unclosed", false},
		{"route path", checkRoutePath, "foo", false},
		{"target", checkTarget, "10.0.0.1:8080", true},
		{"target", checkTarget, "svc.ns", true},
		{"target", checkTarget, "[::1]:80", true},
		{"target", checkTarget, "host:99999", false},
		{"target", checkTarget, "bad host", false},
		{"tag", checkTag, "k8s-name:echo", true},
		{"tag", checkTag, "a,b", false},
		{"tag", checkTag, "a/b", false},
		{"name", checkUTF8Name, "default.echo.80", true},
		{"name", checkUTF8Name, "has space", false},
		{"name", checkUTF8Name, "ünï", true},
		{"method", checkMethod, "GET", true},
		{"method", checkMethod, "get", false},
		{"sni", checkSNIName, "*.example.com", true},
		{"sni", checkSNIName, "10.0.0.1", false},
	} {
		if msg := c.check(c.in); (msg == "") != c.ok {
			t.Errorf("%s %q: message %q, want ok=%v", c.name, c.in, msg, c.ok)
		}
	}
}

func TestTargetWithPort(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1": "10.0.0.1:8000", "10.0.0.1:80": "10.0.0.1:80", "svc": "svc:8000",
		"::1": "[::1]:8000", "[::1]": "[::1]:8000", "[::1]:9": "[::1]:9",
	} {
		if got := targetWithPort(in); got != want {
			t.Errorf("targetWithPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTagFilter(t *testing.T) {
	e := entity{"tags": []any{"a", "b"}}
	for _, c := range []struct {
		q     string
		match bool
	}{
		{"a", true}, {"c", false}, {"a,b", true}, {"a,c", false}, {"a/c", true}, {"c/d", false},
	} {
		f, err := tagFilter(c.q)
		if err != nil || f(e) != c.match {
			t.Errorf("tags=%s: %v (err %v), want %v", c.q, f != nil && f(e), err, c.match)
		}
	}
	if _, err := tagFilter("a,b/c"); err == nil {
		t.Error("mixed filter accepted")
	}
	if f, _ := tagFilter("a"); f(entity{"tags": nil}) {
		t.Error("untagged entity matched")
	}
}
