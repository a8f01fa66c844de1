package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

const dlqUsage = `usage: hwstate dlq ls [--reason R] [--seq A-B] [--json] [flags]
       hwstate dlq redrive (--reason R | --seq A-B) [--dry-run] [flags]

ls lists the dead letters: DLQ stream sequence, event id, reason, Graph's status, the error, when.
redrive publishes the chosen dead letters' original events to the input subject again, each
with the Nats-Msg-Id "<event id>:redrive:<DLQ sequence>" (a fresh id, so the worker's
idempotency ledger lets it through, and the same on a re-run, so a redrive repeated after a
crash is dropped as a duplicate), and deletes each dead letter from the DLQ stream once that
publish is acknowledged. A dead letter whose original was cut to fit the DLQ is not redriven.`

// redriveMark joins an event id and the DLQ sequence in a redriven event's id. A redriven
// event that fails again carries it into the DLQ; a second redrive replaces it.
const redriveMark = ":redrive:"

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "ls" && args[0] != "redrive") {
		fmt.Fprintln(stderr, dlqUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("want a subcommand: ls or redrive")
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conn natsFlags
	conn.register(fs)
	stream := fs.String("dlq-stream", worker.DefaultDLQStream, "stream of dead letters")
	var sel dlqSelection
	fs.Func("reason", "only dead letters of this reason: invalid_event, graph_rejected, retries_exhausted", sel.setReason)
	fs.Func("seq", "only dead letters with DLQ stream sequences from A to B (A-B, or one number)", sel.setSeq)
	asJSON, dryRun := new(bool), new(bool)
	subject := new(string)
	if sub == "ls" {
		fs.BoolVar(asJSON, "json", false, "print each dead letter's body, one a line, instead of a table")
	} else {
		fs.StringVar(subject, "subject", worker.DefaultSubject, "input subject: where the events go back to")
		fs.BoolVar(dryRun, "dry-run", false, "say what would be redriven; change nothing")
	}
	fs.Usage = flagUsage(fs, stdout, dlqUsage)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if sub == "redrive" && sel.reason == "" && !sel.bySeq {
		return errors.New("redrive wants --reason or --seq (or both), so that nothing is redriven by accident")
	}
	nc, js, err := conn.connect(conn.url())
	if err != nil {
		return err
	}
	defer nc.Close()
	if sub == "ls" {
		return dlqList(ctx, js, *stream, sel, *asJSON, stdout)
	}
	r := redrive{js: js, stream: *stream, subject: *subject, dryRun: *dryRun, out: stdout}
	return r.run(ctx, sel)
}

// dlqSelection is which dead letters a command works on; the zero value selects all.
type dlqSelection struct {
	reason   worker.Outcome
	bySeq    bool
	from, to uint64
}

func (s *dlqSelection) setReason(v string) error {
	switch o := worker.Outcome(v); o {
	case worker.InvalidEvent, worker.GraphRejected, worker.RetriesExhausted:
		s.reason = o
		return nil
	}
	return fmt.Errorf("want invalid_event, graph_rejected or retries_exhausted")
}

func (s *dlqSelection) setSeq(v string) error {
	a, b, isRange := strings.Cut(v, "-")
	from, err := strconv.ParseUint(a, 10, 64)
	to := from
	if err == nil && isRange {
		to, err = strconv.ParseUint(b, 10, 64)
	}
	if err != nil || from == 0 || to < from {
		return fmt.Errorf("want A-B with 1 <= A <= B, or one sequence number")
	}
	s.bySeq, s.from, s.to = true, from, to
	return nil
}

func (s dlqSelection) match(seq uint64, d *worker.DeadLetter) bool {
	if s.bySeq && (seq < s.from || seq > s.to) {
		return false
	}
	return s.reason == "" || d.Reason == s.reason
}

// deadLetterMsg is one message of the DLQ stream; body is nil when it is not a dead letter.
type deadLetterMsg struct {
	seq  uint64
	data []byte
	body *worker.DeadLetter
	err  error // why body is nil
}

// eachDeadLetter calls fn for every message of the DLQ stream that sel selects. A message that
// is not a dead letter is passed on only when nothing narrows the selection.
func eachDeadLetter(ctx context.Context, js jetstream.JetStream, stream string, sel dlqSelection, fn func(deadLetterMsg) error) error {
	return sandbox.Each(ctx, js, stream, func(m jetstream.Msg) error {
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("DLQ message without metadata: %w", err)
		}
		dm := deadLetterMsg{seq: meta.Sequence.Stream, data: m.Data()}
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			dm.err = fmt.Errorf("not a dead letter: %w", err)
			if sel.reason != "" || !sel.match(dm.seq, &d) {
				return nil
			}
			return fn(dm)
		}
		if !sel.match(dm.seq, &d) {
			return nil
		}
		dm.body = &d
		return fn(dm)
	})
}

// errorWidth is how much of a dead letter's error the table shows; --json has all of it.
const errorWidth = 60

func dlqList(ctx context.Context, js jetstream.JetStream, stream string, sel dlqSelection, asJSON bool, w io.Writer) error {
	if asJSON {
		return eachDeadLetter(ctx, js, stream, sel, func(m deadLetterMsg) error {
			_, err := fmt.Fprintf(w, "%s\n", m.data)
			return err
		})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tEVENT ID\tREASON\tSTATUS\tATTEMPTS\tFAILED AT\tERROR")
	counts := map[worker.Outcome]int{}
	total := 0
	err := eachDeadLetter(ctx, js, stream, sel, func(m deadLetterMsg) error {
		total++
		if m.body == nil {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t-\t-\t%s\n", m.seq, cut(m.err.Error(), errorWidth))
			return nil
		}
		d := m.body
		counts[d.Reason]++
		status := "-"
		if d.HTTPStatus != 0 {
			status = strconv.Itoa(d.HTTPStatus)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", m.seq, d.EventID, d.Reason, status, d.Attempts,
			d.FailedAt.UTC().Format(time.RFC3339), cut(d.Error, errorWidth))
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var parts []string
	for _, o := range []worker.Outcome{worker.InvalidEvent, worker.GraphRejected, worker.RetriesExhausted} {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	summary := ""
	if len(parts) > 0 {
		summary = ": " + strings.Join(parts, ", ")
	}
	_, err = fmt.Fprintf(w, "%d dead letters%s\n", total, summary)
	return err
}

// cut shortens s to at most n runes, marking the cut, on one line.
func cut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// redrive sends dead letters' originals back to the input subject.
type redrive struct {
	js      jetstream.JetStream
	stream  string
	subject string
	dryRun  bool
	out     io.Writer
}

func (r *redrive) run(ctx context.Context, sel dlqSelection) error {
	dlq, err := r.js.Stream(ctx, r.stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.stream, err)
	}
	verb := "redriven"
	if r.dryRun {
		verb = "would redrive"
	}
	var done, skipped int
	err = eachDeadLetter(ctx, r.js, r.stream, sel, func(m deadLetterMsg) error {
		original, id, err := redriveOf(m)
		if err != nil {
			skipped++
			fmt.Fprintf(r.out, "skipped seq %d: %v\n", m.seq, err)
			return nil
		}
		if !r.dryRun {
			if err := sandbox.Publish(ctx, r.js, r.subject, id, original); err != nil {
				return fmt.Errorf("seq %d: publish to %s: %w (nothing deleted; a re-run is safe)", m.seq, r.subject, err)
			}
			if err := dlq.DeleteMsg(ctx, m.seq); err != nil {
				return fmt.Errorf("seq %d: published as %s, but deleting it from %s failed: %w (a re-run publishes a duplicate, which the stream drops)", m.seq, id, r.stream, err)
			}
		}
		done++
		fmt.Fprintf(r.out, "%s seq %d: event %s (%s) as %s\n", verb, m.seq, m.body.EventID, m.body.Reason, id)
		return nil
	})
	if err != nil {
		return err
	}
	if r.dryRun {
		fmt.Fprintf(r.out, "dry run: %d would be redriven to %s, %d skipped; nothing changed\n", done, r.subject, skipped)
	} else {
		fmt.Fprintf(r.out, "%d redriven to %s, %d skipped\n", done, r.subject, skipped)
	}
	if skipped > 0 {
		return fmt.Errorf("%d dead letters not redriven (listed above)", skipped)
	}
	return nil
}

// redriveOf is the event body to publish again and its new id.
func redriveOf(m deadLetterMsg) (original []byte, id string, err error) {
	d := m.body
	switch {
	case d == nil:
		return nil, "", m.err
	case d.OriginalTruncated:
		return nil, "", fmt.Errorf("event %s: its original was cut to fit the DLQ; republish it from its source", d.EventID)
	case d.Original != nil:
		original = []byte(*d.Original)
	case d.OriginalBase64 != "":
		original, err = base64.StdEncoding.DecodeString(d.OriginalBase64)
		if err != nil {
			return nil, "", fmt.Errorf("event %s: originalBase64: %w", d.EventID, err)
		}
	default:
		return nil, "", fmt.Errorf("event %s: the dead letter holds no original", d.EventID)
	}
	base := d.EventID
	if i := strings.LastIndex(base, redriveMark); i >= 0 {
		base = base[:i]
	}
	return original, base + redriveMark + strconv.FormatUint(m.seq, 10), nil
}
