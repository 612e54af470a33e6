package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Container logs are kept as the kubelet keeps them under CRI: one file per
// container instance, one record per line,
//
//	<RFC3339Nano time> <stdout|stderr> <F|P> <content>
//
// where P marks a fragment of a longer (or unterminated) line, whose content
// carries no newline. The time of each line is what --timestamps prints and
// what --since compares, so the agent reads the process's output through
// pipes and stamps it, instead of letting the process write a file.

// maxLogLine splits longer lines into P fragments (containerd uses the same
// 16 KiB), so a process that never writes a newline cannot make the agent
// buffer without bound.
const maxLogLine = 16 * 1024

const (
	streamStdout = "stdout"
	streamStderr = "stderr"
	tagFull      = 'F'
	tagPartial   = 'P'
)

// logInstance is the log of one run of a container: the file, the pipes its
// process writes to, and the signals followers wait on.
type logInstance struct {
	path string
	now  func() time.Time

	// Child's ends of the pipes, handed to the process; the agent closes
	// its copies once the process has started (or failed to).
	stdout, stderr *os.File

	mu      sync.Mutex // serialises records of the two streams
	f       *os.File
	changed chan struct{} // closed (and replaced) after each record

	copiers sync.WaitGroup
	done    chan struct{} // closed once both streams ended and the file is closed
}

// newLogInstance creates the log file at path and the pipes whose output is
// stamped into it. now is the clock (time.Now outside tests).
func newLogInstance(path string, now func() time.Time) (*logInstance, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, err
	}
	l := &logInstance{path: path, now: now, f: f, changed: make(chan struct{}), done: make(chan struct{})}
	var readers []*os.File
	for _, w := range []**os.File{&l.stdout, &l.stderr} {
		r, pw, err := os.Pipe()
		if err != nil {
			for _, r := range readers {
				_ = r.Close()
			}
			l.closeChildEnds()
			_ = f.Close()
			return nil, err
		}
		readers = append(readers, r)
		*w = pw
	}
	for i, stream := range []string{streamStdout, streamStderr} {
		l.copiers.Add(1)
		go l.copy(readers[i], stream)
	}
	go func() {
		l.copiers.Wait()
		l.mu.Lock()
		_ = l.f.Close()
		l.mu.Unlock()
		close(l.done)
	}()
	return l, nil
}

// closeChildEnds closes the agent's copies of the pipes' write ends: once
// the process (and whatever inherited them) exits, the copiers see EOF.
func (l *logInstance) closeChildEnds() {
	for _, f := range []*os.File{l.stdout, l.stderr} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// maxLogBatch bounds the records written to the file at once.
const maxLogBatch = 64 * 1024

// copy stamps every line read from r into the file as a record of stream.
// Records of lines that arrived together go out in one write (a chatty
// process costs a syscall per batch, not per line); a batch is written as
// soon as nothing more is buffered, so the file is never behind what the
// process wrote before it blocked or paused.
func (l *logInstance) copy(r *os.File, stream string) {
	defer l.copiers.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLogLine)
	var batch []byte
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			batch = l.appendRecord(batch, stream, tagFull, line)
		case errors.Is(err, bufio.ErrBufferFull):
			batch = l.appendRecord(batch, stream, tagPartial, line)
		default:
			// EOF (or a broken pipe): what is left had no newline; it is
			// kept as a fragment so the bytes read back are the bytes
			// written.
			if len(line) > 0 {
				batch = l.appendRecord(batch, stream, tagPartial, line)
			}
			l.write(batch)
			return
		}
		if br.Buffered() == 0 || len(batch) >= maxLogBatch {
			l.write(batch)
			batch = batch[:0]
		}
	}
}

// appendRecord appends one record for content, stamped now.
func (l *logInstance) appendRecord(buf []byte, stream string, tag byte, content []byte) []byte {
	buf = l.now().UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, ' ', tag, ' ')
	buf = append(buf, content...)
	if tag == tagPartial || len(content) == 0 || content[len(content)-1] != '\n' {
		buf = append(buf, '\n')
	}
	return buf
}

// write appends whole records in a single write, so a reader never sees
// records of the two streams interleaved, and wakes followers.
func (l *logInstance) write(records []byte) {
	if len(records) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.f.Write(records)
	close(l.changed)
	l.changed = make(chan struct{})
}

// wait returns a channel closed at the next record.
func (l *logInstance) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// Done is closed once the instance's output has ended and is all on disk.
func (l *logInstance) Done() <-chan struct{} { return l.done }

// logOptions are the kubelet's /containerLogs query parameters.
type logOptions struct {
	Timestamps bool
	// TailLines keeps only the last n records; negative means all.
	TailLines int64
	// Since drops records stamped before it; zero means none.
	Since time.Time
	// LimitBytes stops after that many bytes of output; 0 means no limit.
	LimitBytes int64
	// Stream keeps one stream ("stdout" or "stderr"); empty keeps both.
	Stream string
}

// errLimitReached ends a read that wrote LimitBytes.
var errLimitReached = errors.New("log byte limit reached")

// readLog writes the log at path to w as the kubelet does. With live (the
// instance still writing the file) it follows: after the last record it
// waits for more until live is done or ctx ends.
func readLog(ctx context.Context, w io.Writer, path string, opts logOptions, live *logInstance) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if opts.TailLines >= 0 {
		off, err := tailOffset(f, opts.TailLines)
		if err != nil {
			return err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
	}
	out := &limitedWriter{w: w, limit: opts.LimitBytes}
	flush := func() {
		if fl, ok := w.(interface{ Flush() }); ok {
			fl.Flush()
		}
	}
	br := bufio.NewReaderSize(f, maxLogLine+128)
	var pending []byte // a record whose newline has not been written yet
	for {
		// Taken before reading, so a record written after the read below
		// hit EOF still wakes us.
		var changed <-chan struct{}
		finished := true
		if live != nil {
			changed = live.wait()
			select {
			case <-live.done:
			default:
				finished = false
			}
		}
		for {
			chunk, err := br.ReadSlice('\n')
			pending = append(pending, chunk...)
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil {
				break // EOF: an incomplete record stays pending
			}
			if err := writeRecord(out, pending, opts); err != nil {
				if errors.Is(err, errLimitReached) {
					flush()
					return nil
				}
				return err
			}
			pending = pending[:0]
		}
		flush()
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-live.done:
		}
	}
}

// writeRecord parses one record and writes its content as opts ask.
func writeRecord(w io.Writer, rec []byte, opts logOptions) error {
	rec = bytes.TrimSuffix(rec, []byte{'\n'})
	ts, rest, ok := bytes.Cut(rec, []byte{' '})
	stream, rest2, ok2 := bytes.Cut(rest, []byte{' '})
	tag, content, ok3 := bytes.Cut(rest2, []byte{' '})
	if !ok || !ok2 || !ok3 || len(tag) != 1 {
		return fmt.Errorf("malformed log record %q", rec)
	}
	if opts.Stream != "" && string(stream) != opts.Stream {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return fmt.Errorf("malformed log record time %q: %w", ts, err)
	}
	if !opts.Since.IsZero() && t.Before(opts.Since) {
		return nil
	}
	var buf []byte
	if opts.Timestamps {
		buf = t.AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, ' ')
	}
	buf = append(buf, content...)
	if tag[0] == tagFull {
		buf = append(buf, '\n')
	}
	_, err = w.Write(buf)
	return err
}

// tailOffset is where the last n complete records of f begin.
func tailOffset(f *os.File, n int64) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	end := st.Size()
	const block = 32 * 1024
	buf := make([]byte, block)
	// The first newline found from the end closes the last complete record
	// (a record being written may follow it without its newline yet); each
	// further one closes the record before the ones counted so far.
	lastSeen := false
	var counted int64
	for pos := end; pos > 0; {
		size := min(int64(block), pos)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				continue
			}
			if !lastSeen {
				lastSeen = true
				if n == 0 {
					return pos + i + 1, nil
				}
				continue
			}
			counted++
			if counted == n {
				return pos + i + 1, nil
			}
		}
	}
	return 0, nil
}

// limitedWriter writes at most limit bytes (all when limit is 0) and then
// reports errLimitReached.
type limitedWriter struct {
	w            io.Writer
	limit, wrote int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.limit == 0 {
		return l.w.Write(p)
	}
	left := l.limit - l.wrote
	if int64(len(p)) < left {
		n, err := l.w.Write(p)
		l.wrote += int64(n)
		return n, err
	}
	n, err := l.w.Write(p[:left])
	l.wrote += int64(n)
	if err != nil {
		return n, err
	}
	return n, errLimitReached
}
