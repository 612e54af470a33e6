package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// t0 has a nanosecond part, so the tests see RFC3339Nano's precision.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)

// tickingClock returns t0, t0+1s, t0+2s, ... on successive calls.
func tickingClock() func() time.Time {
	var mu sync.Mutex
	next := t0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t := next
		next = next.Add(time.Second)
		return t
	}
}

// emit writes text to one of l's pipes and waits until it is recorded
// (text must make exactly one record), so records land in call order.
func emit(t *testing.T, l *logInstance, stream, text string) {
	t.Helper()
	changed := l.wait()
	pipe := l.stdout
	if stream == streamStderr {
		pipe = l.stderr
	}
	if _, err := pipe.WriteString(text); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatalf("%q was not recorded", text)
	}
}

// finish ends l's output as the process's exit does and waits for it.
func finish(t *testing.T, l *logInstance) {
	t.Helper()
	l.closeChildEnds()
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("log instance did not finish")
	}
}

func TestReadLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	l, err := newLogInstance(path, tickingClock())
	if err != nil {
		t.Fatal(err)
	}
	// Stamps t0+0s .. t0+3s, then a final line without a newline (t0+4s).
	emit(t, l, streamStdout, "one\n")
	emit(t, l, streamStderr, "two\n")
	emit(t, l, streamStdout, "three\n")
	emit(t, l, streamStdout, "\n")
	_, _ = l.stdout.WriteString("no newline")
	finish(t, l)

	ts := func(sec int) string { return t0.Add(time.Duration(sec) * time.Second).Format(time.RFC3339Nano) }
	tests := []struct {
		name string
		opts logOptions
		want string
	}{
		{"everything", logOptions{TailLines: -1}, "one\ntwo\nthree\n\nno newline"},
		{"timestamps", logOptions{TailLines: -1, Timestamps: true},
			ts(0) + " one\n" + ts(1) + " two\n" + ts(2) + " three\n" + ts(3) + " \n" + ts(4) + " no newline"},
		{"tail 2", logOptions{TailLines: 2}, "\nno newline"},
		{"tail 0", logOptions{TailLines: 0}, ""},
		{"tail beyond the start", logOptions{TailLines: 99}, "one\ntwo\nthree\n\nno newline"},
		{"since a record's own time keeps it", logOptions{TailLines: -1, Since: t0.Add(2 * time.Second)}, "three\n\nno newline"},
		{"since between records", logOptions{TailLines: -1, Since: t0.Add(1500 * time.Millisecond)}, "three\n\nno newline"},
		{"since after the last", logOptions{TailLines: -1, Since: t0.Add(time.Hour)}, ""},
		{"tail then since", logOptions{TailLines: 4, Since: t0.Add(3 * time.Second)}, "\nno newline"},
		{"limit bytes cuts a line", logOptions{TailLines: -1, LimitBytes: 6}, "one\ntw"},
		{"limit bytes counts timestamps", logOptions{TailLines: -1, LimitBytes: 10, Timestamps: true}, ts(0)[:10]},
		{"stderr only", logOptions{TailLines: -1, Stream: streamStderr}, "two\n"},
		{"stdout only, tail 3", logOptions{TailLines: 3, Stream: streamStdout}, "three\n\nno newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := readLog(context.Background(), &out, path, tt.opts, nil); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLongLinesAreSplitAndJoined(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	l, err := newLogInstance(path, tickingClock())
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 2*maxLogLine+10) + "\n"
	go func() { _, _ = l.stdout.WriteString(long + "short\n") }()
	var got bytes.Buffer
	// Follow until the two lines are in, then end the instance.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w := io.Pipe()
	go func() {
		_ = readLog(ctx, w, path, logOptions{TailLines: -1}, l)
		_ = w.Close()
	}()
	br := bufio.NewReader(r)
	for range 2 {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(line)
	}
	finish(t, l)
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Errorf("unexpected output after the lines: %q", rest)
	}
	if got.String() != long+"short\n" {
		t.Errorf("read back %d bytes, want %d", got.Len(), len(long)+6)
	}
	raw, _ := os.ReadFile(path)
	if n := bytes.Count(raw, []byte(" stdout P ")); n != 2 {
		t.Errorf("the long line made %d partial records, want 2", n)
	}
}

func TestFollow(t *testing.T) {
	tests := []struct {
		name string
		// end stops the follower: by the process exiting or the client
		// going away.
		end func(t *testing.T, l *logInstance, cancel context.CancelFunc)
	}{
		{"ends when the container exits", func(t *testing.T, l *logInstance, _ context.CancelFunc) { finish(t, l) }},
		{"ends when the client goes away", func(_ *testing.T, _ *logInstance, cancel context.CancelFunc) { cancel() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			l, err := newLogInstance(path, tickingClock())
			if err != nil {
				t.Fatal(err)
			}
			defer l.closeChildEnds()
			emit(t, l, streamStdout, "before\n")

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, w := io.Pipe()
			returned := make(chan error, 1)
			go func() {
				returned <- readLog(ctx, w, path, logOptions{TailLines: 1, Timestamps: true}, l)
				_ = w.Close()
			}()
			lines := bufio.NewReader(r)
			expectLine := func(want string) {
				t.Helper()
				got, err := lines.ReadString('\n')
				if err != nil || got != want {
					t.Fatalf("got %q (%v), want %q", got, err, want)
				}
			}
			expectLine(t0.Format(time.RFC3339Nano) + " before\n")
			// Written while the follower waits at the end of the file.
			emit(t, l, streamStderr, "during\n")
			expectLine(t0.Add(time.Second).Format(time.RFC3339Nano) + " during\n")

			tt.end(t, l, cancel)
			go func() { _, _ = io.Copy(io.Discard, lines) }()
			select {
			case err := <-returned:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the follower did not return")
			}
		})
	}
}

func TestFollowOfAFinishedRunReturnsAtTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	l, err := newLogInstance(path, tickingClock())
	if err != nil {
		t.Fatal(err)
	}
	emit(t, l, streamStdout, "last words\n")
	finish(t, l)
	var out bytes.Buffer
	if err := readLog(context.Background(), &out, path, logOptions{TailLines: -1}, l); err != nil {
		t.Fatal(err)
	}
	if out.String() != "last words\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestLogStoreKeepsCurrentAndPreviousRun(t *testing.T) {
	dir := t.TempDir()
	s := newLogStore(dir, tickingClock())
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1"},
		Spec: corev1.PodSpec{
			NodeName:       "node-a",
			InitContainers: []corev1.Container{{Name: "init"}},
			Containers:     []corev1.Container{{Name: "main"}},
		},
	}
	s.addPod(pod)
	read := func(path string) string {
		var out bytes.Buffer
		if err := readLog(context.Background(), &out, path, logOptions{TailLines: -1}, nil); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}

	if _, _, err := s.find("node-a", "ns", "web", "main", false); !errors.Is(err, errNotStarted) {
		t.Errorf("before the first run: %v, want errNotStarted", err)
	}
	for run, text := range []string{"run 0\n", "run 1\n", "run 2\n"} {
		l, err := s.start(pod, "main")
		if err != nil {
			t.Fatal(err)
		}
		emit(t, l, streamStdout, text)
		finish(t, l)
		path, live, err := s.find("node-a", "ns", "web", "main", false)
		if err != nil || live != l || read(path) != text {
			t.Fatalf("run %d: current is %q (live %v, %v)", run, path, live == l, err)
		}
		prev, live, err := s.find("node-a", "ns", "web", "main", true)
		if run == 0 {
			if err == nil || !strings.Contains(err.Error(), `previous terminated container "main" in pod "web" not found`) {
				t.Errorf("first run has a previous: %q, %v", prev, err)
			}
			continue
		}
		if err != nil || live != nil || read(prev) != "run "+string(rune('0'+run-1))+"\n" {
			t.Errorf("run %d: previous %q reads %q (%v)", run, prev, read(prev), err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "ns_web_u1", "main", "*.log"))
	if len(files) != 2 {
		t.Errorf("kept %v, want only the current and the previous run", files)
	}

	for _, tc := range []struct {
		node, name, container string
		want                  error
	}{
		{"node-b", "web", "main", errNoPod},
		{"node-a", "db", "main", errNoPod},
		{"node-a", "web", "sidecar", errNoContainer},
		{"node-a", "web", "init", errNotStarted},
	} {
		if _, _, err := s.find(tc.node, "ns", tc.name, tc.container, false); !errors.Is(err, tc.want) {
			t.Errorf("find(%s, %s, %s): %v, want %v", tc.node, tc.name, tc.container, err, tc.want)
		}
	}

	// A new pod of the same name starts afresh; removing the old one then
	// leaves it alone.
	again := pod.DeepCopy()
	again.UID = "u2"
	s.addPod(again)
	s.removePod(pod)
	if _, _, err := s.find("node-a", "ns", "web", "main", false); !errors.Is(err, errNotStarted) {
		t.Errorf("the new pod inherited a log: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ns_web_u1")); !os.IsNotExist(err) {
		t.Errorf("the removed pod's logs are still there: %v", err)
	}
}
