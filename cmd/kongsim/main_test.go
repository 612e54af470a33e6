package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	gokong "github.com/kong/go-kong/kong"
)

func TestParseListen(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"0.0.0.0:8000", "0.0.0.0:8000", ""},
		{"127.0.0.1:8001 reuseport backlog=16384", "127.0.0.1:8001", ""},
		{"0.0.0.0:8000, 0.0.0.0:8443 http2 ssl", "0.0.0.0:8000", ""},
		{"[::1]:8001", "[::1]:8001", ""},
		{"off", "", ""},
		{"", "", ""},
		{"8001", "", "expected host:port"},
		{"a:b", "", "bad port"},
	} {
		got, err := parseListen(c.in)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parseListen(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfig(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.database != "off" || c.proxyListen != "0.0.0.0:8000" || c.adminListen != "127.0.0.1:8001" ||
		c.statusListen != "" || c.updateFrequency != 5*time.Second {
		t.Errorf("defaults = %+v", c)
	}
	if d := c.dsn(); d != "postgres://kong:@127.0.0.1:5432/kong?sslmode=disable" {
		t.Errorf("dsn = %s", d)
	}
	c, err = loadConfig(envOf(map[string]string{"KONG_DATABASE": "postgres", "KONG_DB_UPDATE_FREQUENCY": "0.25",
		"KONG_PG_HOST": "db", "KONG_PG_PASSWORD": "p@ss", "KONG_STATUS_LISTEN": "0.0.0.0:8100"}))
	if err != nil || c.updateFrequency != 250*time.Millisecond || c.statusListen != "0.0.0.0:8100" ||
		c.dsn() != "postgres://kong:p%40ss@db:5432/kong?sslmode=disable" {
		t.Errorf("config = %+v %v", c, err)
	}
	for _, bad := range []map[string]string{
		{"KONG_DATABASE": "cassandra"}, {"KONG_DB_UPDATE_FREQUENCY": "-1"},
		{"KONG_ADMIN_LISTEN": "nope"}, {"KONG_PG_PORT": "x"}, {"KONG_LOG_LEVEL": "loud"},
	} {
		if _, err := loadConfig(envOf(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestHelpAndUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, envOf(nil), &out, &errOut, nil); code != 0 ||
		!strings.Contains(out.String(), "KONG_DB_UPDATE_FREQUENCY") {
		t.Errorf("--help = %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"start", "now"}, envOf(nil), &out, &errOut, nil); code != 2 {
		t.Errorf("unknown command exit = %d", code)
	}
	if code := run(context.Background(), []string{"migrations", "bootstrap"}, envOf(nil), &out, &errOut, nil); code != 1 {
		t.Errorf("bootstrap without postgres exit = %d", code)
	}
}

// TestServeDBLess runs the binary's wiring on loopback: load a config with
// go-kong, see readiness and the proxy follow, then shut down cleanly.
func TestServeDBLess(t *testing.T) {
	env := envOf(map[string]string{
		"KONG_ADMIN_LISTEN": "127.0.0.1:0", "KONG_PROXY_LISTEN": "127.0.0.1:0 reuseport",
		"KONG_STATUS_LISTEN": "127.0.0.1:0", "KONG_LOG_LEVEL": "warn",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan [3]string, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, nil, env, io.Discard, io.Discard, func(a, p, s string) { addrs <- [3]string{a, p, s} })
	}()
	var a [3]string
	select {
	case a = <-addrs:
	case code := <-exit:
		t.Fatalf("kongsim exited early with %d", code)
	}
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("http://" + a[2] + "/status/ready"); code != 503 {
		t.Errorf("ready before config = %d", code)
	}
	base := "http://" + a[0]
	client, err := gokong.NewClient(&base, &http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"_format_version":"3.0","services":[{"name":"s","host":"127.0.0.1","port":1,"routes":[{"paths":["/"]}]}]}`
	if err := client.ReloadDeclarativeRawConfig(ctx, strings.NewReader(cfg), true, true); err != nil {
		t.Fatal(err)
	}
	if code := get("http://" + a[2] + "/status/ready"); code != 200 {
		t.Errorf("ready after config = %d", code)
	}
	if code := get("http://" + a[1] + "/nothing-listens-there"); code != 502 {
		t.Errorf("proxy to a closed port = %d, want 502", code)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("exit code = %d", code)
	}
}
