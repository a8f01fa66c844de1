// Package backfill publishes a file of events, one a line, into the input stream, safe to
// re-run: each event's Nats-Msg-Id is the hex SHA-256 of its line (and of its tenant in
// multi-tenant mode), so the stream drops a line published before. It checks every line
// first and reports the invalid ones by number, with a progress display, and can check a
// file without publishing (Validate).
package backfill

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/schema"
)

// ackTimeout bounds the wait for one event's ack from the stream, so a lost ack ends as a
// reported failure instead of a hang.
const ackTimeout = time.Minute

// Config is one backfill.
type Config struct {
	// File holds the events, one a line; "-" is standard input.
	File    string
	Subject string
	// Tenant, a tenant (directory) id, sends every event to Subject.Tenant (multi-tenant
	// mode); a line whose body names another tenant is invalid. Without it, a line whose body
	// has a tenantId goes to Subject.tenantId, and any other line to Subject.
	Tenant string
	// Validate checks every line and publishes nothing.
	Validate bool
	// MaxPending is how many events may await the stream's ack at once.
	MaxPending int
	// Dial connects to JetStream with opts; close ends the connection. Not called with
	// Validate.
	Dial func(opts ...jetstream.JetStreamOpt) (js jetstream.JetStream, close func(), err error)
	// Out receives the invalid lines, the failures and the summary; Progress the progress
	// display (a bar on a terminal).
	Out, Progress io.Writer
}

// Run publishes (or checks) the file. It fails when a line was invalid or not published,
// or the run was interrupted; a re-run then publishes only what is missing.
func Run(ctx context.Context, cfg Config) error {
	if cfg.MaxPending < 1 {
		return errors.New("--max-pending must be at least 1")
	}
	rt, err := newRouter(cfg.Subject, cfg.Tenant)
	if err != nil {
		return err
	}
	in, size, err := openInput(cfg.File)
	if err != nil {
		return err
	}
	defer in.Close()

	p := &run{lines: newLineReader(in), route: rt, out: &lockedWriter{w: cfg.Out}, start: time.Now()}
	prog := newProgress(cfg.Progress, size, cfg.Validate)
	p.out.before = prog.clear
	stopProgress := every(prog.interval(), func() { prog.show(p.snapshot()) })

	if cfg.Validate {
		p.validate(ctx)
	} else {
		js, closeConn, err := cfg.Dial(jetstream.WithPublishAsyncMaxPending(cfg.MaxPending), jetstream.WithPublishAsyncTimeout(ackTimeout))
		if err != nil {
			stopProgress()
			return err
		}
		defer closeConn()
		if err := rt.findStream(ctx, js); err != nil {
			stopProgress()
			return err
		}
		p.publish(ctx, js, cfg.MaxPending)
	}
	stopProgress()
	prog.done(p.snapshot())
	s := p.snapshot()
	s.print(cfg.Out, cfg.Validate)

	switch {
	case p.readErr != nil:
		return fmt.Errorf("read %s after line %d: %w", cfg.File, s.lines, p.readErr)
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after line %d; a re-run skips what was published", s.lines)
	case s.failed > 0:
		return fmt.Errorf("%d lines not published (listed above); a re-run skips what was published", s.failed)
	case cfg.Validate && s.invalid > 0:
		return fmt.Errorf("%d of %d lines are not valid events", s.invalid, s.lines-s.blank)
	case s.invalid > 0:
		return fmt.Errorf("%d lines are not valid events and were not published (listed above)", s.invalid)
	}
	return nil
}

// openInput opens the file, or standard input for "-", and tells its size when known (-1
// otherwise), for the progress's ETA.
func openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	size := int64(-1)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, nil
}

// lineReader reads lines of at most one event each, with memory bounded by the longest
// event, however large the file.
type lineReader struct {
	r    *bufio.Reader
	n    int   // lines read
	read int64 // bytes read
}

// maxLine is the longest line kept: an event of the largest size, and a CRLF.
const maxLine = schema.MaxEventSize + 2

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, maxLine)}
}

// next returns the next line without its line ending, valid until the next call. A line
// longer than any event is returned as tooLong, with its rest skipped. At the end it returns
// io.EOF.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	line, err = l.r.ReadSlice('\n')
	l.read += int64(len(line))
	for errors.Is(err, bufio.ErrBufferFull) {
		tooLong = true
		var rest []byte
		rest, err = l.r.ReadSlice('\n')
		l.read += int64(len(rest))
	}
	if errors.Is(err, io.EOF) && (len(line) > 0 || tooLong) {
		err = nil // the last line has no line ending
	}
	if err != nil {
		return nil, false, err
	}
	l.n++
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	return line, tooLong, nil
}

// run is one run of publish or --validate: the counts, shared with the progress
// display and the goroutine collecting acks.
type run struct {
	lines *lineReader
	route router
	out   *lockedWriter
	start time.Time

	readLines, readBytes                              atomic.Int64
	blank, invalid, published, duplicates, failed, ok atomic.Int64
	readErr                                           error // set by the reading goroutine, read after it ends
}

// each calls fn for every line that is a valid event, with its destination, reporting the
// others by number, until the input ends or ctx is done.
func (p *run) each(ctx context.Context, fn func(n int, line []byte, to destination)) {
	for ctx.Err() == nil {
		line, tooLong, err := p.lines.next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.readErr = err
			}
			return
		}
		p.readLines.Store(int64(p.lines.n))
		p.readBytes.Store(p.lines.read)
		switch {
		case tooLong:
			p.invalid.Add(1)
			p.out.printf("line %d: longer than an event may be (%d bytes)\n", p.lines.n, schema.MaxEventSize)
		case len(bytes.TrimSpace(line)) == 0:
			p.blank.Add(1)
		default:
			to, err := p.route.of(line)
			if err != nil {
				p.invalid.Add(1)
				p.out.printf("line %d: %v\n", p.lines.n, err)
				continue
			}
			p.ok.Add(1)
			fn(p.lines.n, line, to)
		}
	}
}

func (p *run) validate(ctx context.Context) {
	p.each(ctx, func(int, []byte, destination) {})
}

// pendingAck is an event published and waiting for the stream's ack.
type pendingAck struct {
	line    int
	subject string
	fut     jetstream.PubAckFuture
}

// publish sends every valid line asynchronously, at most maxPending awaiting their acks, and
// returns once every ack (or failure) is in.
func (p *run) publish(ctx context.Context, js jetstream.JetStream, maxPending int) {
	acks := make(chan pendingAck, maxPending)
	var collected sync.WaitGroup
	collected.Go(func() {
		for a := range acks {
			select {
			case ack := <-a.fut.Ok():
				if ack.Duplicate {
					p.duplicates.Add(1)
				} else {
					p.published.Add(1)
				}
			case err := <-a.fut.Err():
				p.failed.Add(1)
				p.out.printf("line %d: not published: %v\n", a.line, notPublished(a.subject, err))
			}
		}
	})
	p.each(ctx, func(n int, line []byte, to destination) {
		m := nats.NewMsg(to.subject)
		m.Data = bytes.Clone(line) // the reader reuses its buffer; the message waits for its ack
		m.Header.Set(jetstream.MsgIDHeader, to.msgID(m.Data))
		for {
			// A full window of pending acks stalls the publish; waiting again is the back-pressure.
			fut, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Second))
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() == nil {
				continue
			}
			if err != nil {
				p.failed.Add(1)
				p.out.printf("line %d: not published: %v\n", n, notPublished(to.subject, err))
				return
			}
			acks <- pendingAck{line: n, subject: to.subject, fut: fut}
			return
		}
	})
	close(acks)
	collected.Wait()
}

// snapshot is the counts at one moment.
type snapshot struct {
	lines, blank, invalid, ok, published, duplicates, failed int64
	bytes                                                    int64
	elapsed                                                  time.Duration
}

func (p *run) snapshot() snapshot {
	return snapshot{
		lines: p.readLines.Load(), bytes: p.readBytes.Load(),
		blank: p.blank.Load(), invalid: p.invalid.Load(), ok: p.ok.Load(),
		published: p.published.Load(), duplicates: p.duplicates.Load(), failed: p.failed.Load(),
		elapsed: time.Since(p.start),
	}
}

func (s snapshot) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.lines) / s.elapsed.Seconds()
}

func (s snapshot) print(w io.Writer, validated bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lines\t%d\n", s.lines)
	if validated {
		fmt.Fprintf(tw, "valid\t%d\n", s.ok)
	} else {
		fmt.Fprintf(tw, "published\t%d\n", s.published)
		fmt.Fprintf(tw, "duplicates\t%d\t(already in the stream: not published again)\n", s.duplicates)
		if s.failed > 0 {
			fmt.Fprintf(tw, "failed\t%d\n", s.failed)
		}
	}
	fmt.Fprintf(tw, "invalid\t%d\n", s.invalid)
	fmt.Fprintf(tw, "blank\t%d\n", s.blank)
	fmt.Fprintf(tw, "elapsed\t%s\n", s.elapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "rate\t%.0f lines/s\n", s.rate())
	_ = tw.Flush()
}

// lockedWriter lets the reader and the ack collector report lines without interleaving, and
// clears the progress bar first so a report does not end up inside it.
type lockedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	before func()
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.before != nil {
		l.before()
	}
	fmt.Fprintf(l.w, format, args...)
}

// every calls fn every interval until the returned stop is called, which waits for a call in
// progress to end.
func every(interval time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fn()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
