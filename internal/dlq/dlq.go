// Package dlq is the tooling for the dead-letter stream: list the dead letters, and redrive
// chosen ones, publishing their original events to the input subject (their tenant's, in
// multi-tenant mode) again under an id the worker's idempotency ledger lets through, once.
package dlq

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/schema"
	"github.com/hwstate/hwstate/worker"
)

// redriveMark joins an event id and the DLQ sequence in a redriven event's id. A redriven
// event that fails again carries it into the DLQ; a second redrive replaces it.
const redriveMark = ":redrive:"

// Selection is which dead letters a command works on; the zero value selects all.
type Selection struct {
	reason   worker.Outcome
	tenant   string // lower case
	bySeq    bool
	from, to uint64
}

// SetTenant selects the dead letters of one tenant (multi-tenant mode).
func (s *Selection) SetTenant(v string) error {
	if !schema.IsGUID(v) {
		return fmt.Errorf("want a tenant (directory) id, a GUID")
	}
	s.tenant = strings.ToLower(v)
	return nil
}

// SetReason selects the dead letters of one reason.
func (s *Selection) SetReason(v string) error {
	switch o := worker.Outcome(v); o {
	case worker.InvalidEvent, worker.GraphRejected, worker.RetriesExhausted:
		s.reason = o
		return nil
	}
	return fmt.Errorf("want invalid_event, graph_rejected or retries_exhausted")
}

// SetSeq selects the dead letters with DLQ stream sequences from A to B ("A-B") or one.
func (s *Selection) SetSeq(v string) error {
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

// Narrowed reports whether the selection narrows anything: a redrive of everything is
// refused, so that nothing is redriven by accident.
func (s Selection) Narrowed() bool { return s.reason != "" || s.tenant != "" || s.bySeq }

func (s Selection) match(seq uint64, d *worker.DeadLetter) bool {
	if s.bySeq && (seq < s.from || seq > s.to) {
		return false
	}
	if s.tenant != "" && !strings.EqualFold(d.TenantID, s.tenant) {
		return false
	}
	return s.reason == "" || d.Reason == s.reason
}

// message is one message of the DLQ stream; body is nil when it is not a dead letter.
type message struct {
	seq  uint64
	data []byte
	body *worker.DeadLetter
	err  error // why body is nil
}

// newMessage decodes the DLQ stream's message seq.
func newMessage(seq uint64, data []byte) message {
	m := message{seq: seq, data: data}
	var d worker.DeadLetter
	if err := json.Unmarshal(data, &d); err != nil {
		m.err = fmt.Errorf("not a dead letter: %w", err)
		return m
	}
	m.body = &d
	return m
}

// selects reports whether sel selects m. A message that is not a dead letter is selected
// only when neither a reason nor a tenant narrows the selection.
func (s Selection) selects(m message) bool {
	if m.body == nil {
		return s.reason == "" && s.tenant == "" && s.match(m.seq, &worker.DeadLetter{})
	}
	return s.match(m.seq, m.body)
}

// eachMsg calls fn for every message of the DLQ stream that sel selects.
func eachMsg(ctx context.Context, js jetstream.JetStream, stream string, sel Selection, fn func(message) error) error {
	return sandbox.Each(ctx, js, stream, func(m jetstream.Msg) error {
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("DLQ message without metadata: %w", err)
		}
		dm := newMessage(meta.Sequence.Stream, m.Data())
		if !sel.selects(dm) {
			return nil
		}
		return fn(dm)
	})
}

// errorWidth is how much of a dead letter's error the table shows; --json has all of it.
const errorWidth = 60

// List writes the selected dead letters: a table with a count per reason, or with asJSON
// each one's body on a line.
func List(ctx context.Context, js jetstream.JetStream, stream string, sel Selection, asJSON bool, w io.Writer) error {
	if asJSON {
		return eachMsg(ctx, js, stream, sel, func(m message) error {
			_, err := fmt.Fprintf(w, "%s\n", m.data)
			return err
		})
	}
	// The rows wait for the last, which may be the first to name a tenant: a TENANT column
	// shows only in multi-tenant mode.
	var rows [][]string
	tenanted := false
	counts := map[worker.Outcome]int{}
	err := eachMsg(ctx, js, stream, sel, func(m message) error {
		seq := strconv.FormatUint(m.seq, 10)
		if m.body == nil {
			rows = append(rows, []string{seq, "-", "-", "-", "-", "-", "-", cut(m.err.Error(), errorWidth)})
			return nil
		}
		d := m.body
		counts[d.Reason]++
		tenanted = tenanted || d.TenantID != ""
		status := "-"
		if d.HTTPStatus != 0 {
			status = strconv.Itoa(d.HTTPStatus)
		}
		rows = append(rows, []string{seq, cmp.Or(d.TenantID, "-"), d.EventID, string(d.Reason), status, strconv.Itoa(d.Attempts),
			d.FailedAt.UTC().Format(time.RFC3339), cut(d.Error, errorWidth)})
		return nil
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range append([][]string{{"SEQ", "TENANT", "EVENT ID", "REASON", "STATUS", "ATTEMPTS", "FAILED AT", "ERROR"}}, rows...) {
		if !tenanted {
			row = slices.Delete(row, 1, 2)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
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
	_, err = fmt.Fprintf(w, "%d dead letters%s\n", len(rows), summary)
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

// Redrive sends dead letters' originals back to the input subject, or in multi-tenant mode
// to their tenant's subject under it.
type Redrive struct {
	JS      jetstream.JetStream
	Stream  string // the DLQ stream
	Subject string // the input subject
	// DryRun says what would be redriven and changes nothing.
	DryRun bool
	Out    io.Writer
}

// Run redrives the events sel selects, each at most once however many dead letters of it
// the DLQ holds: the unit is the original event id (the dead letter's, without a former
// redrive's mark), of its tenant. An event is selected when any of its dead letters is; its newest dead
// letter is sent, under an id made of that dead letter's sequence, and once the publish is
// acknowledged every dead letter of the event leaves the DLQ, the one sent last. A re-run
// after a crash anywhere in between finds that same newest dead letter and sends it under
// the same id, which the input stream drops as a duplicate.
func (r *Redrive) Run(ctx context.Context, sel Selection) error {
	dlq, err := r.JS.Stream(ctx, r.Stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", r.Stream, err)
	}
	events, skipped, err := r.scan(ctx, sel)
	if err != nil {
		return err
	}
	verb := "redriven"
	if r.DryRun {
		verb = "would redrive"
	}
	done := 0
	// A second read, rather than fetching each newest dead letter by sequence, so that
	// redrive needs no more permissions than ls and delete.
	err = eachMsg(ctx, r.JS, r.Stream, Selection{}, func(m message) error {
		ev := events[m.seq]
		if ev == nil {
			return nil
		}
		original, id, err := redriveOf(m)
		if err != nil {
			skipped++
			fmt.Fprintf(r.Out, "skipped seq %d: %v\n", m.seq, err)
			return nil
		}
		subject, to := r.Subject, ""
		if t := m.body.TenantID; t != "" {
			subject = r.Subject + "." + t
			to = " to " + subject
		}
		if !r.DryRun {
			if err := sandbox.Publish(ctx, r.JS, subject, id, original); err != nil {
				return fmt.Errorf("seq %d: publish to %s: %w (nothing deleted; a re-run is safe)", m.seq, subject, err)
			}
			for _, seq := range ev.seqs {
				if err := dlq.DeleteMsg(ctx, seq); err != nil {
					return fmt.Errorf("seq %d: published as %s, but deleting seq %d from %s failed: %w (a re-run publishes a duplicate, which the stream drops)", m.seq, id, seq, r.Stream, err)
				}
			}
		}
		done++
		fmt.Fprintf(r.Out, "%s seq %d: event %s (%s) as %s%s%s\n", verb, m.seq, m.body.EventID, m.body.Reason, id, to, older(ev.seqs))
		return nil
	})
	if err != nil {
		return err
	}
	if r.DryRun {
		fmt.Fprintf(r.Out, "dry run: %d would be redriven to %s, %d skipped; nothing changed\n", done, r.Subject, skipped)
	} else {
		fmt.Fprintf(r.Out, "%d redriven to %s, %d skipped\n", done, r.Subject, skipped)
	}
	if skipped > 0 {
		return fmt.Errorf("%d dead letters not redriven (listed above)", skipped)
	}
	return nil
}

// event is one original event's dead letters, by DLQ sequence, oldest first.
type event struct {
	seqs     []uint64
	selected bool
}

// scan reads the whole DLQ, so that an event's every dead letter is known, selected or
// not, and returns the selected events by the sequence of their newest dead letter. A
// selected message that is not a dead letter is reported and counted in skipped.
func (r *Redrive) scan(ctx context.Context, sel Selection) (byNewest map[uint64]*event, skipped int, err error) {
	byID := map[string]*event{}
	err = eachMsg(ctx, r.JS, r.Stream, Selection{}, func(m message) error {
		if m.body == nil {
			if sel.selects(m) {
				skipped++
				fmt.Fprintf(r.Out, "skipped seq %d: %v\n", m.seq, m.err)
			}
			return nil
		}
		// Event ids are unique within a tenant only.
		id := m.body.TenantID + "/" + originalID(m.body.EventID)
		ev := byID[id]
		if ev == nil {
			ev = &event{}
			byID[id] = ev
		}
		ev.seqs = append(ev.seqs, m.seq)
		ev.selected = ev.selected || sel.selects(m)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	byNewest = map[uint64]*event{}
	for _, ev := range byID {
		if ev.selected {
			byNewest[ev.seqs[len(ev.seqs)-1]] = ev
		}
	}
	return byNewest, skipped, nil
}

// older names the dead letters of an event besides the one sent, which left the DLQ with it.
func older(seqs []uint64) string {
	if len(seqs) < 2 {
		return ""
	}
	var s []string
	for _, seq := range seqs[:len(seqs)-1] {
		s = append(s, strconv.FormatUint(seq, 10))
	}
	return " (older dead letters of it: seq " + strings.Join(s, ", ") + ")"
}

// originalID is an event id without a former redrive's mark.
func originalID(id string) string {
	if i := strings.LastIndex(id, redriveMark); i >= 0 {
		return id[:i]
	}
	return id
}

// redriveOf is the event body to publish again and its new id.
func redriveOf(m message) (original []byte, id string, err error) {
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
	return original, originalID(d.EventID) + redriveMark + strconv.FormatUint(m.seq, 10), nil
}
