// Package journal is a drill's record of what happened: JSON Lines, one
// record per request, fault, probe verdict and observed event. Reports are
// generated from the journal alone, so they can be regenerated later.
package journal

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Kind is what a record describes.
type Kind string

const (
	KindDrillStart Kind = "drill-start" // Drill, Detail: the drill file; Value: provider
	KindDrillEnd   Kind = "drill-end"   // Outcome, Detail: why
	KindRepetition Kind = "repetition"  // Rep starts
	KindRequest    Kind = "request"     // Status, LatencyMS, ErrClass, Subject: the Kong endpoint; RetriedFrom, RetryError
	KindFaultStart Kind = "fault-start" // Fault, Action, Subject: the target
	KindFaultCheck Kind = "fault-verified"
	KindRecovered  Kind = "recovered" // the system recovered from a fault: Fault, Subject, Seconds
	KindFaultEnd   Kind = "fault-end" // Fault, Verified, Detail, Subject: targets, Value: killed proxy endpoints (comma-separated)
	KindEvent      Kind = "event"     // Event, Subject, Value
	KindProbe      Kind = "probe"     // Probe, Phase, OK, Seconds, Detail
	KindRollback   Kind = "rollback"  // Action, OK, Detail
)

// Event names an observed change.
const (
	EventLockHolder = "lock-holder" // Value: the holder identity ("" when released)
	EventConfigHash = "config-hash" // Subject: a Kong pod; Value: its configuration hash
	EventPodPhase   = "pod-phase"   // Subject: a pod; Value: phase (Ready, NotReady, Deleted)
	// EventKongAPIUp is when a Kong restarted in place answers on its
	// Admin API again (its Status API where the Admin API is pod-local).
	EventKongAPIUp = "kong-api-up" // Subject: the Kong pod
	// EventKongConfigured is when that Kong reports ready (it holds a
	// configuration); Seconds: since EventKongAPIUp.
	EventKongConfigured = "kong-configured" // Subject: the Kong pod; Seconds
	// EventKongKilled is when a fault SIGKILLed the Kong behind a proxy
	// endpoint (T: just before the signal).
	EventKongKilled = "kong-killed" // Subject: the proxy endpoint ip:port; Value: the pod; Action: the fault's action
	// EventKongDead is the last moment the killed Kong's process was seen
	// running (T), before it had exited.
	EventKongDead = "kong-dead" // Subject: the proxy endpoint ip:port; Value: the pod
	// EventEndpointIn and EventEndpointOut are when a proxy endpoint
	// entered or left the traffic probe's rotation, as the watch on the
	// proxy Service's EndpointSlices delivered it.
	EventEndpointIn  = "endpoint-in"  // Subject: ip:port
	EventEndpointOut = "endpoint-out" // Subject: ip:port; Value: why (not ready, terminating, removed)
)

// Error classes of requests.
const (
	ErrNone      = ""
	ErrNon2xx    = "non-2xx"
	ErrTransport = "transport" // no answer: refused, reset, timeout, EOF
)

// Outcomes of a drill.
const (
	OutcomePassed      = "passed"
	OutcomeFailed      = "failed"
	OutcomeAborted     = "aborted"
	OutcomeInterrupted = "interrupted"
)

// Record is one line of the journal. Fields that do not apply are omitted.
type Record struct {
	T    time.Time `json:"t"`
	Kind Kind      `json:"kind"`
	// Drill is the drill's title on every record, so journals concatenate.
	Drill string `json:"drill"`
	Rep   int    `json:"rep,omitempty"`

	Status    int     `json:"status,omitempty"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	ErrClass  string  `json:"err,omitempty"`
	// RetriedFrom is the endpoint whose connection failed before any byte
	// was sent, when the probe retried the request on another endpoint
	// (retry-connect-failures); RetryError is that failure. Subject,
	// Status and ErrClass are then the retry's.
	RetriedFrom string `json:"retried_from,omitempty"`
	RetryError  string `json:"retry_error,omitempty"`

	Fault    string `json:"fault,omitempty"`
	Action   string `json:"action,omitempty"`
	Verified *bool  `json:"verified,omitempty"`

	Event   string `json:"event,omitempty"`
	Subject string `json:"subject,omitempty"`
	Value   string `json:"value,omitempty"`

	Probe   string  `json:"probe,omitempty"`
	Phase   string  `json:"phase,omitempty"`
	OK      *bool   `json:"ok,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`

	Outcome string `json:"outcome,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Bool returns a pointer to b, for Record.OK and Record.Verified.
func Bool(b bool) *bool { return &b }

// Writer appends records to a journal; it is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	w     *bufio.Writer
	c     io.Closer
	drill string
	now   func() time.Time
	err   error
	n     int
	taps  []func(Record)
}

// Tap calls f with every record added from now on (under the writer's
// lock, in order), e.g. to keep running counts.
func (j *Writer) Tap(f func(Record)) {
	j.mu.Lock()
	j.taps = append(j.taps, f)
	j.mu.Unlock()
}

// Create opens a new journal file at path.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return NewWriter(f, f), nil
}

// NewWriter writes records to w; c (may be nil) is closed by Close.
func NewWriter(w io.Writer, c io.Closer) *Writer {
	return &Writer{w: bufio.NewWriterSize(w, 64<<10), c: c, now: time.Now}
}

// SetClock replaces time.Now for stamping records (tests).
func (j *Writer) SetClock(now func() time.Time) { j.now = now }

// Now is the journal's clock.
func (j *Writer) Now() time.Time { return j.now() }

// SetDrill sets the drill title stamped on the following records.
func (j *Writer) SetDrill(title string) {
	j.mu.Lock()
	j.drill = title
	j.mu.Unlock()
}

// Add appends r, stamping its time (when zero) and drill.
func (j *Writer) Add(r Record) {
	if r.T.IsZero() {
		r.T = j.now()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if r.Drill == "" {
		r.Drill = j.drill
	}
	for _, f := range j.taps {
		f(r)
	}
	if j.err != nil {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		j.err = err
		return
	}
	b = append(b, '\n')
	_, j.err = j.w.Write(b)
	j.n++
}

// Len is the number of records written.
func (j *Writer) Len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.n
}

// Flush writes buffered records out.
func (j *Writer) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	return j.w.Flush()
}

// Close flushes and closes the journal.
func (j *Writer) Close() error {
	err := j.Flush()
	if j.c != nil {
		if cerr := j.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Read decodes every record of a journal. A last line cut short (a journal
// still being written, or left by a crash) is ignored; a bad line anywhere
// else is an error.
func Read(r io.Reader) ([]Record, error) {
	var recs []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	var pending error
	for sc.Scan() {
		line++
		if pending != nil {
			return nil, pending
		}
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			pending = fmt.Errorf("journal line %d: %w", line, err)
			continue
		}
		recs = append(recs, rec)
	}
	return recs, sc.Err()
}

// ReadFile decodes a journal file.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}
