package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ip-restriction: deny, then allow, by client address or CIDR.
type ipRestriction struct {
	noResponse
	allow, deny []netip.Prefix
	status      int
	message     string
}

func newIPRestriction(cfg map[string]any) (handler, error) {
	var c struct {
		Allow   []string `json:"allow"`
		Deny    []string `json:"deny"`
		Status  *int     `json:"status"`
		Message *string  `json:"message"`
	}
	if err := decodeConfig(cfg, &c); err != nil {
		return nil, err
	}
	h := &ipRestriction{status: http.StatusForbidden}
	if c.Status != nil {
		h.status = *c.Status
	}
	if c.Message != nil {
		h.message = *c.Message
	}
	parse := func(list []string) ([]netip.Prefix, error) {
		out := make([]netip.Prefix, 0, len(list))
		for _, s := range list {
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("invalid ip or cidr range: %q", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
		return out, nil
	}
	var err error
	if h.allow, err = parse(c.Allow); err != nil {
		return nil, err
	}
	if h.deny, err = parse(c.Deny); err != nil {
		return nil, err
	}
	return h, nil
}

func matchAny(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (h *ipRestriction) access(x *exchange) {
	a, err := netip.ParseAddr(x.clientIP)
	if err != nil {
		x.errorExit(http.StatusForbidden, "Cannot identify the client IP address, unix domain sockets are not supported.")
		return
	}
	a = a.Unmap()
	if (len(h.deny) > 0 && matchAny(h.deny, a)) || (len(h.allow) > 0 && !matchAny(h.allow, a)) {
		msg := h.message
		if msg == "" {
			msg = "IP address not allowed: " + x.clientIP
		}
		x.errorExit(h.status, msg)
	}
}

// request-termination answers every request itself.
type requestTermination struct {
	noResponse
	conf struct {
		StatusCode  int     `json:"status_code"`
		Message     *string `json:"message"`
		Body        *string `json:"body"`
		ContentType *string `json:"content_type"`
		Trigger     *string `json:"trigger"`
	}
}

var terminationMessages = map[int]string{
	401: "Unauthorized", 404: "Not found", 405: "Method not allowed",
	500: "An unexpected error occurred", 502: "Bad Gateway", 503: "Service unavailable",
}

func (t *requestTermination) access(x *exchange) {
	c := &t.conf
	if c.Trigger != nil {
		if x.r.Header.Get(*c.Trigger) == "" && !x.query().Has(*c.Trigger) {
			return
		}
	}
	if c.Body != nil {
		ct := ""
		if c.ContentType != nil {
			ct = *c.ContentType
		}
		x.setExit(c.StatusCode, []byte(*c.Body), ct)
		return
	}
	msg, ok := terminationMessages[c.StatusCode]
	if c.Message != nil {
		msg, ok = *c.Message, true
	}
	if !ok {
		x.setExit(c.StatusCode, nil, "")
		return
	}
	x.messageExit(c.StatusCode, msg)
}

// rate-limiting with the local policy: counters per plugin, identifier
// and window, kept across configuration updates like Kong's shared dict.
type rateLimiting struct {
	noResponse
	id       string
	counters *rateCounters
	conf     struct {
		Second            *float64 `json:"second"`
		Minute            *float64 `json:"minute"`
		Hour              *float64 `json:"hour"`
		Day               *float64 `json:"day"`
		Month             *float64 `json:"month"`
		Year              *float64 `json:"year"`
		LimitBy           string   `json:"limit_by"`
		HeaderName        *string  `json:"header_name"`
		Path              *string  `json:"path"`
		Policy            string   `json:"policy"`
		HideClientHeaders bool     `json:"hide_client_headers"`
		ErrorCode         int      `json:"error_code"`
		ErrorMessage      string   `json:"error_message"`
	}
}

// rateWindows are Kong's periods, shortest first, with their lengths in
// seconds (kong.plugins.rate-limiting.expiration).
var rateWindows = [...]struct {
	name, header string
	seconds      int64
}{
	{"second", "Second", 1}, {"minute", "Minute", 60}, {"hour", "Hour", 3600},
	{"day", "Day", 86400}, {"month", "Month", 2592000}, {"year", "Year", 31536000},
}

// windowStart is the start of the calendar period holding t (UTC), as
// Kong's timestamp.get_timestamps computes it.
func windowStart(period string, t time.Time) time.Time {
	t = t.UTC()
	switch period {
	case "second":
		return t.Truncate(time.Second)
	case "minute":
		return t.Truncate(time.Minute)
	case "hour":
		return t.Truncate(time.Hour)
	case "day":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
}

type rateKey struct {
	plugin, identifier, period string
	start                      int64
}

// rateCounters is the local policy's store. Counters of past windows are
// dropped as windows pass.
type rateCounters struct {
	mu sync.Mutex
	n  map[rateKey]int64
}

func newRateCounters() *rateCounters { return &rateCounters{n: map[rateKey]int64{}} }

// usage returns the counts of keys (at most one per window).
func (rc *rateCounters) usage(keys []rateKey) [len(rateWindows)]int64 {
	var out [len(rateWindows)]int64
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, k := range keys {
		out[i] = rc.n[k]
	}
	return out
}

func (rc *rateCounters) increment(keys []rateKey, now time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, k := range keys {
		rc.n[k]++
	}
	if len(rc.n) > 4096 {
		for k := range rc.n {
			if windowStart(k.period, now).Unix() != k.start {
				delete(rc.n, k)
			}
		}
	}
}

func (rl *rateLimiting) identifier(x *exchange) string {
	c := &rl.conf
	id := ""
	switch c.LimitBy {
	case "service":
		id = x.serviceID
	case "consumer":
		if x.consumer != nil {
			id = x.consumer.ID
		} else {
			id = x.credential
		}
	case "credential":
		id = x.credential
	case "header":
		if c.HeaderName != nil {
			id = x.r.Header.Get(*c.HeaderName)
		}
	case "path":
		if c.Path != nil && x.r.URL.Path == *c.Path {
			id = *c.Path
		}
	}
	if id == "" {
		id = x.clientIP
	}
	return id
}

// Canonical header names, so that setting them costs no canonicalization.
var (
	rateLimitHeaders     [len(rateWindows)]string
	rateRemainingHeaders [len(rateWindows)]string
)

func init() {
	for i, w := range rateWindows {
		rateLimitHeaders[i] = "X-Ratelimit-Limit-" + w.header
		rateRemainingHeaders[i] = "X-Ratelimit-Remaining-" + w.header
	}
}

func (rl *rateLimiting) access(x *exchange) {
	c := &rl.conf
	limits := [len(rateWindows)]*float64{c.Second, c.Minute, c.Hour, c.Day, c.Month, c.Year}
	id := rl.identifier(x)
	type usage struct {
		i         int
		limit     int64
		remaining int64
		start     time.Time
	}
	var usedBuf [len(rateWindows)]usage
	var keysBuf [len(rateWindows)]rateKey
	used, keys := usedBuf[:0], keysBuf[:0]
	for i, l := range limits {
		if l == nil {
			continue
		}
		start := windowStart(rateWindows[i].name, x.now)
		keys = append(keys, rateKey{rl.id, id, rateWindows[i].name, start.Unix()})
		used = append(used, usage{i: i, limit: int64(*l), start: start})
	}
	counts := rl.counters.usage(keys)
	stop := -1
	for k := range used {
		used[k].remaining = used[k].limit - counts[k]
		if used[k].remaining <= 0 && stop < 0 {
			stop = used[k].i
		}
	}
	if !c.HideClientHeaders {
		if x.respHeaders == nil {
			x.respHeaders = make(http.Header, 2*len(used)+4)
		}
		h := x.respHeaders
		// One backing array for every value.
		vals := make([]string, 0, 2*len(used)+4)
		set := func(k, v string) {
			vals = append(vals, v)
			h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
		var limit, remaining, window, reset int64
		for k, u := range used {
			rem := u.remaining
			if stop < 0 || stop == u.i {
				rem--
			}
			rem = max(rem, 0)
			secs := rateWindows[u.i].seconds
			if k == 0 || rem < remaining || rem == remaining && secs > window {
				limit, remaining, window = u.limit, rem, secs
				reset = max(1, window-int64(x.now.Sub(u.start)/time.Second))
			}
			set(rateLimitHeaders[u.i], strconv.FormatInt(u.limit, 10))
			set(rateRemainingHeaders[u.i], strconv.FormatInt(rem, 10))
		}
		set("Ratelimit-Limit", strconv.FormatInt(limit, 10))
		set("Ratelimit-Remaining", strconv.FormatInt(remaining, 10))
		set("Ratelimit-Reset", strconv.FormatInt(reset, 10))
		if stop >= 0 {
			set("Retry-After", strconv.FormatInt(reset, 10))
		}
	}
	if stop >= 0 {
		x.errorExit(c.ErrorCode, c.ErrorMessage)
		return
	}
	rl.counters.increment(keys, x.now)
}

// stripPort drops a port from a host.
func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[:i]
	}
	return host
}
