package kongsync

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kong/go-kong/kong"
)

// outcome labels a push in metrics.
type outcome string

const (
	outcomeSuccess   outcome = "success"   // 201: loaded
	outcomeUnchanged outcome = "unchanged" // 304: Kong already had it (check_hash)
	outcomeRejected  outcome = "rejected"  // 400: invalid configuration
	outcomeThrottled outcome = "throttled" // 429: another load is running
	outcomeError     outcome = "error"     // anything else
)

// maxErrorBody bounds how much of an error answer we read: flattened errors
// for a large configuration can be big, but not unbounded.
const maxErrorBody = 8 << 20

type pushResult struct {
	outcome    outcome
	err        error
	rejections []Rejection
	retryAfter time.Duration
	answered   bool // Kong sent an HTTP answer (as opposed to a transport error)
}

// postConfig sends body to POST /config. go-kong's ReloadDeclarativeRawConfig
// folds 304 into success and drops Retry-After, so the request is built with
// go-kong and the answer read here.
func postConfig(ctx context.Context, kc *kong.Client, body []byte) pushResult {
	req, err := kc.NewRequest(http.MethodPost, "/config", nil, body)
	if err != nil {
		return pushResult{outcome: outcomeError, err: fmt.Errorf("building POST /config: %w", err)}
	}
	req.URL.RawQuery = "check_hash=1&flatten_errors=1"
	resp, err := kc.DoRAW(ctx, req)
	if err != nil {
		return pushResult{outcome: outcomeError, err: fmt.Errorf("POST /config: %w", err)}
	}
	defer resp.Body.Close()
	res := classify(resp)
	res.answered = true
	return res
}

func classify(resp *http.Response) pushResult {
	switch code := resp.StatusCode; {
	case code == http.StatusNotModified:
		drain(resp.Body)
		return pushResult{outcome: outcomeUnchanged}
	case code >= 200 && code < 300:
		drain(resp.Body)
		return pushResult{outcome: outcomeSuccess}
	case code == http.StatusBadRequest:
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if err != nil {
			return pushResult{outcome: outcomeError, err: fmt.Errorf("POST /config: reading 400 answer: %w", err)}
		}
		msg, rs := parseRejection(raw)
		return pushResult{
			outcome:    outcomeRejected,
			err:        fmt.Errorf("POST /config: Kong rejected the configuration (%d entity errors): %s", len(rs), msg),
			rejections: rs,
		}
	case code == http.StatusTooManyRequests:
		drain(resp.Body)
		wait := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return pushResult{outcome: outcomeThrottled, retryAfter: wait,
			err: fmt.Errorf("POST /config: Kong is busy loading another configuration (429, retry after %s)", wait)}
	default:
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return pushResult{outcome: outcomeError, err: fmt.Errorf("POST /config: HTTP %d: %s", code, messageOf(raw))}
	}
}

// drain reads what is left of a small answer, so that its connection can
// carry the next request. A bigger one is left unread: Kong's 201 to POST
// /config echoes the loaded configuration, as big as the push itself, and
// reading (with TLS, decrypting) megabytes from each of many Kongs costs
// the controller far more than the new connection the next push opens
// after Close drops this one. The status line already told the outcome.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, maxDrain)) }

// maxDrain is the largest answer drain reads to keep its connection.
const maxDrain = 64 << 10

// configErrorBody is Kong's 400 answer to POST /config?flatten_errors=1.
type configErrorBody struct {
	Message         string `json:"message"`
	FlattenedErrors []struct {
		EntityType string          `json:"entity_type"`
		EntityName string          `json:"entity_name"`
		EntityID   string          `json:"entity_id"`
		EntityTags json.RawMessage `json:"entity_tags"`
		Errors     []struct {
			Type    string `json:"type"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"flattened_errors"`
}

// parseRejection reads a 400 answer into its message and one Rejection per
// reported error. An answer without flattened errors (an empty body, a top
// level error) yields a single Rejection carrying the message, so callers
// always have something to report.
func parseRejection(raw []byte) (string, []Rejection) {
	var body configErrorBody
	if err := json.Unmarshal(raw, &body); err != nil {
		msg := clip(raw)
		return msg, []Rejection{{Message: msg}}
	}
	var rs []Rejection
	for _, fe := range body.FlattenedErrors {
		base := Rejection{
			EntityType: fe.EntityType,
			EntityName: fe.EntityName,
			EntityID:   fe.EntityID,
			Tags:       tagsOf(fe.EntityTags),
		}
		if len(fe.Errors) == 0 {
			rs = append(rs, base)
			continue
		}
		for _, e := range fe.Errors {
			r := base
			r.Tags = append([]string(nil), base.Tags...)
			r.Field, r.Message = e.Field, e.Message
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		rs = []Rejection{{Message: body.Message}}
	}
	return body.Message, rs
}

// tagsOf accepts Kong's entity_tags as an array of strings; Kong encodes an
// empty Lua table as {}, which means no tags.
func tagsOf(raw json.RawMessage) []string {
	var tags []string
	if json.Unmarshal(raw, &tags) != nil {
		return nil
	}
	return tags
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
// Anything unreadable means no hint (0).
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > int64(24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

func messageOf(raw []byte) string {
	var body struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Message != "" {
		return body.Message
	}
	return clip(raw)
}

// clip shortens a non-JSON answer (an HTML error page from a proxy) for an
// error message.
func clip(raw []byte) string {
	msg := strings.ToValidUTF8(strings.TrimSpace(string(raw)), "")
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "…"
	}
	return msg
}
