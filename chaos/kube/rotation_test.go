package kube

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"konductor.dev/chaos/drill"
	"konductor.dev/chaos/journal"
)

func ptr[T any](v T) *T { return &v }

// ep is an endpoint with its conditions (nil: unset).
func ep(ip string, ready, serving, terminating *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
}

func slice(name string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "kong", Labels: map[string]string{discoveryv1.LabelServiceName: ProxyService}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("proxy"), Port: ptr(port)}, {Name: ptr("tls"), Port: ptr(int32(8443))}},
		Endpoints:   eps,
	}
}

// TestServingEndpoints: the rotation follows kube-proxy's reading of the
// endpoint conditions.
func TestServingEndpoints(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	for _, tc := range []struct {
		name   string
		slices []*discoveryv1.EndpointSlice
		in     []string
		out    map[string]string
	}{
		{"ready, and unset conditions mean ready", []*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", yes, yes, no), ep("10.0.0.2", nil, nil, nil))},
			[]string{"10.0.0.1:8000", "10.0.0.2:8000"}, map[string]string{}},
		{"not ready leaves", []*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", yes, yes, no), ep("10.0.0.2", no, no, no))},
			[]string{"10.0.0.1:8000"}, map[string]string{"10.0.0.2:8000": outNotReady}},
		{"terminating leaves while another is ready, even if serving", []*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", yes, yes, no), ep("10.0.0.2", no, yes, yes))},
			[]string{"10.0.0.1:8000"}, map[string]string{"10.0.0.2:8000": outTerminating}},
		{"serving terminating endpoints when none is ready", []*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", no, yes, yes), ep("10.0.0.2", no, no, yes), ep("10.0.0.3", no, no, no))},
			[]string{"10.0.0.1:8000"}, map[string]string{"10.0.0.2:8000": outTerminating, "10.0.0.3:8000": outNotReady}},
		{"serving unset defers to ready", []*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", no, nil, yes), ep("10.0.0.2", no, nil, no))},
			nil, map[string]string{"10.0.0.1:8000": outTerminating, "10.0.0.2:8000": outNotReady}},
		{"listed twice, ready in one slice", []*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", no, no, no)), slice("b", 8000, ep("10.0.0.1", yes, yes, no))},
			[]string{"10.0.0.1:8000"}, map[string]string{}},
		{"port taken per slice", []*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", yes, yes, no)), slice("b", 9000, ep("10.0.0.2", yes, yes, no))},
			[]string{"10.0.0.1:8000", "10.0.0.2:9000"}, map[string]string{}},
		{"no addresses, no slices", []*discoveryv1.EndpointSlice{slice("a", 8000, discoveryv1.Endpoint{})}, nil, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, out := servingEndpoints(tc.slices, "proxy")
			if !reflect.DeepEqual(in, tc.in) || !reflect.DeepEqual(out, tc.out) {
				t.Errorf("in %v out %v, want in %v out %v", in, out, tc.in, tc.out)
			}
		})
	}
}

// TestRotationWatch: a change of the EndpointSlices reaches the rotation
// through the watch, and each endpoint entering or leaving is journaled.
func TestRotationWatch(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	cs := fake.NewClientset(slice("kong-proxy-a", 8000, ep("10.0.0.1", yes, yes, no), ep("10.0.0.2", yes, yes, no)))
	var buf bytes.Buffer
	j := journal.NewWriter(&buf, nil)
	rot := newRotation(j, "proxy")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := rot.watch(ctx, cs, "kong", ProxyService, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := rot.endpoints(); !reflect.DeepEqual(got, []string{"10.0.0.1:8000", "10.0.0.2:8000"}) {
		t.Fatalf("rotation %v", got)
	}
	steps := []struct {
		s    *discoveryv1.EndpointSlice
		want []string
	}{
		{slice("kong-proxy-a", 8000, ep("10.0.0.1", no, no, no), ep("10.0.0.2", yes, yes, no)), []string{"10.0.0.2:8000"}},
		{slice("kong-proxy-a", 8000, ep("10.0.0.2", yes, yes, no)), []string{"10.0.0.2:8000"}},
		{slice("kong-proxy-a", 8000, ep("10.0.0.2", yes, yes, no), ep("10.0.0.3", yes, yes, no)), []string{"10.0.0.2:8000", "10.0.0.3:8000"}},
		// Nothing serving: requests keep going to the last ones known.
		{slice("kong-proxy-a", 8000, ep("10.0.0.2", no, no, yes), ep("10.0.0.3", no, no, no)), []string{"10.0.0.2:8000", "10.0.0.3:8000"}},
	}
	for i, st := range steps {
		if _, err := cs.DiscoveryV1().EndpointSlices("kong").Update(ctx, st.s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, fmt.Sprintf("step %d: rotation %v", i, st.want), func() bool { return reflect.DeepEqual(rot.endpoints(), st.want) })
	}
	// The last step changes no endpoint requests go to, only the journal.
	eventually(t, "six rotation events", func() bool { return journaled(t, j) == 6 })
	recs, err := journal.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s %s %s", r.Event, r.Subject, r.Value))
	}
	want := []string{
		"endpoint-in 10.0.0.1:8000 ", "endpoint-in 10.0.0.2:8000 ",
		"endpoint-out 10.0.0.1:8000 not ready",
		"endpoint-in 10.0.0.3:8000 ",
		"endpoint-out 10.0.0.2:8000 terminating", "endpoint-out 10.0.0.3:8000 not ready",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("journal:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// journaled flushes j and counts its records.
func journaled(t *testing.T, j *journal.Writer) int {
	t.Helper()
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	return j.Len()
}

// eventually polls cond until it holds, failing after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTrafficRetriesConnectFailures: with retry-connect-failures, a request
// to an endpoint that refuses connections goes to another one and is
// journaled as retried; without, it is a transport error.
func TestTrafficRetriesConnectFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer srv.Close()
	live, _ := url.Parse(srv.URL)
	// A port nothing listens on: taken, then released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, retry := range []bool{false, true} {
		t.Run(fmt.Sprintf("retry=%v", retry), func(t *testing.T) {
			var buf bytes.Buffer
			j := journal.NewWriter(&buf, nil)
			rot := newRotation(j, "proxy")
			rot.eps.Store(&[]string{dead, live.Host})
			client, retrier := trafficClient(rot, 2*time.Second, retry)
			var ok, failed, retried int
			for seq := range uint64(20) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+rot.endpoints()[seq%2]+"/", nil)
				req.Header.Set(seqHeader, fmt.Sprint(seq))
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					ok++
				} else {
					failed++
				}
				if rt, yes := retrier.take(seq); yes {
					retried++
					if rt.from != dead || rt.to != live.Host || !strings.Contains(rt.err, "refused") {
						t.Errorf("retry %+v", rt)
					}
				}
			}
			want := [3]int{10, 10, 0}
			if retry {
				want = [3]int{20, 0, 10}
			}
			if got := [3]int{ok, failed, retried}; got != want {
				t.Errorf("ok, failed, retried = %v, want %v", got, want)
			}
		})
	}
	// Through the probe: every retried request is journaled with the
	// endpoint it failed on, and its outcome is the retry's.
	var buf bytes.Buffer
	j := journal.NewWriter(&buf, nil)
	tg := &Target{o: Options{ProxyURL: "http://" + dead}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := tg.Traffic(ctx, drill.Probe{Name: "t", Type: drill.ProbeTraffic, Rate: 50, RetryConnectFailures: true}, j); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	recs, err := journal.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// With a fixed proxy URL there is no other endpoint: nothing to retry
	// on, so the failures stay failures.
	for _, r := range recs {
		if r.ErrClass != journal.ErrTransport || r.RetriedFrom != "" {
			t.Fatalf("record %+v: want a transport error, not retried", r)
		}
	}
	if len(recs) < 5 {
		t.Fatalf("%d requests", len(recs))
	}
}

// TestTrafficRetriesResetIdempotentOnly: a Kong that resets the connection
// after reading the request (killed with the request on the wire) gets its
// GETs retried on another endpoint, never a POST, whose first delivery may
// have had effects.
func TestTrafficRetriesResetIdempotentOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer srv.Close()
	live, _ := url.Parse(srv.URL)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				// Read the request head, then reset: no answer ever starts.
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	resetting := l.Addr().String()
	var buf bytes.Buffer
	rot := newRotation(journal.NewWriter(&buf, nil), "proxy")
	rot.eps.Store(&[]string{resetting, live.Host})
	client, retrier := trafficClient(rot, 2*time.Second, true)
	for i, tc := range []struct {
		method  string
		body    string
		retried bool
	}{
		{http.MethodGet, "", true},
		{http.MethodHead, "", true},
		{http.MethodPost, "x", false},
	} {
		seq := uint64(100 + i)
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		req, _ := http.NewRequest(tc.method, "http://"+resetting+"/", body)
		req.Header.Set(seqHeader, fmt.Sprint(seq))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		rt, yes := retrier.take(seq)
		if yes != tc.retried || (err == nil) != tc.retried {
			t.Errorf("%s: retried %v (%+v), err %v; want retried %v", tc.method, yes, rt, err, tc.retried)
		}
		if yes && (rt.from != resetting || rt.to != live.Host) {
			t.Errorf("%s: retry %+v", tc.method, rt)
		}
	}
}

// TestRotationChangesBeforeItIsJournaled: when the time of an endpoint's
// out-event is read, requests already go elsewhere. A request is stamped
// before it chooses its endpoint, so one stamped after the event can never
// have gone to the endpoint that left (a connect failure 1 ms after the
// event was once counted as unexplained for this).
func TestRotationChangesBeforeItIsJournaled(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	j := journal.NewWriter(io.Discard, nil)
	rot := newRotation(j, "proxy")
	var atClock [][]string
	j.SetClock(func() time.Time {
		atClock = append(atClock, append([]string(nil), rot.endpoints()...))
		return time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	})
	rot.update([]*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", yes, yes, no), ep("10.0.0.2", yes, yes, no))})
	atClock = nil
	rot.update([]*discoveryv1.EndpointSlice{slice("a", 8000, ep("10.0.0.1", yes, yes, no), ep("10.0.0.2", no, no, no))})
	if len(atClock) == 0 {
		t.Fatal("the update read no time for its out-event")
	}
	for _, eps := range atClock {
		if !reflect.DeepEqual(eps, []string{"10.0.0.1:8000"}) {
			t.Errorf("requests went to %v when the out-event's time was read, want only 10.0.0.1:8000", eps)
		}
	}
}
