package kong

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Kong's default listen values (kong.conf), served by GET / when Options
// leave them empty.
const (
	DefaultProxyListen  = "0.0.0.0:8000 reuseport backlog=16384, 0.0.0.0:8443 http2 ssl reuseport backlog=16384"
	DefaultStreamListen = "off"
	DefaultAdminListen  = "127.0.0.1:8001 reuseport backlog=16384, 127.0.0.1:8444 http2 ssl reuseport backlog=16384"
	DefaultStatusListen = "off"
)

// The flags a listen entry may carry, in the order Kong writes them back in
// a listener's "listener" text, whatever order they were given in.
var (
	httpListenFlags   = []string{"ssl", "http2", "proxy_protocol", "deferred", "bind", "reuseport", "backlog="}
	streamListenFlags = []string{"udp", "ssl", "proxy_protocol", "bind", "reuseport", "backlog="}
	backlogFlag       = regexp.MustCompile(`^backlog=[0-9]+$`)
)

// listenConfig is one *_listen setting as GET / serves it under
// configuration: the entries as written (proxy_listen) and each parsed
// (proxy_listeners).
type listenConfig struct {
	entries   []any
	listeners []any
}

// parseListen reads a Kong listen value ("0.0.0.0:8000 reuseport, [::]:8443
// ssl"): "off" as the first entry means none. Each listener has ip, port,
// listener (the address and the flags given, in Kong's order) and a boolean
// per flag. A backlog flag is keyed by its text ("backlog=16384": true), an
// absent one by Kong's pattern ("backlog=%d+": false), as Kong does.
func parseListen(setting, value string, flags []string) (listenConfig, error) {
	var lc listenConfig
	usage := fmt.Errorf("%s %q: must be of form: [off] | <ip>:<port> [%s], [... next entry ...]",
		setting, value, strings.Join(flagNames(flags), "] ["))
	entries := strings.Split(value, ",")
	for _, e := range entries {
		lc.entries = append(lc.entries, strings.TrimSpace(e))
	}
	if strings.TrimSpace(entries[0]) == "off" {
		return lc, nil
	}
	for _, entry := range entries {
		given := map[string]string{}
		var addr []string
		for _, f := range strings.Fields(entry) {
			matched := false
			for _, flag := range flags {
				if f == flag || (flag == "backlog=" && backlogFlag.MatchString(f)) {
					given[flag], matched = f, true
				}
			}
			if !matched {
				addr = append(addr, f)
			}
		}
		if len(addr) != 1 {
			return listenConfig{}, usage
		}
		host, portText, err := net.SplitHostPort(addr[0])
		port, perr := strconv.Atoi(portText)
		if err != nil || perr != nil || port < 0 || port > 65535 || host == "" {
			return listenConfig{}, usage
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.String()
			if ip.Is6() {
				host = "[" + host + "]"
			}
		}
		l := map[string]any{"ip": host, "port": port}
		text := host + ":" + portText
		for _, flag := range flags {
			v, ok := given[flag]
			switch {
			case ok:
				l[v] = true
				text += " " + v
			case flag == "backlog=":
				l["backlog=%d+"] = false
			default:
				l[flag] = false
			}
		}
		l["listener"] = text
		lc.listeners = append(lc.listeners, l)
	}
	return lc, nil
}

func flagNames(flags []string) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		if f == "backlog=" {
			f = "backlog=%d+"
		}
		out[i] = f
	}
	return out
}

// listenSettings parses the node's listen options for GET /.
func listenSettings(o Options) (map[string]any, error) {
	out := map[string]any{}
	for _, s := range []struct {
		name, value, def string
		flags            []string
	}{
		{"proxy_listen", o.ProxyListen, DefaultProxyListen, httpListenFlags},
		{"stream_listen", o.StreamListen, DefaultStreamListen, streamListenFlags},
		{"admin_listen", o.AdminListen, DefaultAdminListen, httpListenFlags},
		{"status_listen", o.StatusListen, DefaultStatusListen, httpListenFlags},
	} {
		v := strings.TrimSpace(s.value)
		if v == "" {
			v = s.def
		}
		lc, err := parseListen(s.name, v, s.flags)
		if err != nil {
			return nil, err
		}
		out[s.name] = lc.entries
		// Kong's JSON encoder writes an empty list as an empty object;
		// go-kong's Listeners accepts both.
		if len(lc.listeners) == 0 {
			out[s.name+"ers"] = map[string]any{}
		} else {
			out[s.name+"ers"] = lc.listeners
		}
	}
	return out, nil
}
