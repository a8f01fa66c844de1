package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

const dlqNotFound = "00000000-0000-4000-8000-000000000404"

// dlqFixture is a running worker whose DLQ holds two graph_rejected dead letters (Graph did
// not know their configuration) and one invalid_event, next to two created events.
func dlqFixture(t *testing.T) *toolEnv {
	t.Helper()
	e := newToolEnv(t, emulator.Config{NotFoundIDs: []string{dlqNotFound}})
	e.startWorker()
	e.publish(worker.DefaultSubject, "ok-1", sandbox.Event(publishConfig, 1))
	e.publish(worker.DefaultSubject, "rejected-1", sandbox.Event(dlqNotFound, 2))
	e.publish(worker.DefaultSubject, "invalid-1", []byte(`{"hardwareConfigurationId":"nope"}`))
	e.publish(worker.DefaultSubject, "rejected-2", sandbox.Event(dlqNotFound, 3))
	e.publish(worker.DefaultSubject, "ok-2", sandbox.Event(publishConfig, 4))
	e.waitFor("5 outcomes", func() bool {
		return e.msgs(worker.DefaultResultStream)+e.msgs(worker.DefaultDLQStream) >= 5
	})
	e.waitMsgs(worker.DefaultDLQStream, 3)
	return e
}

// listedIDs are the event ids of ls's table rows, in order.
func listedIDs(out string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`(?m)^\d+\s+(\S+)\s+(invalid_event|graph_rejected|retries_exhausted)\s`).FindAllStringSubmatch(out, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// dlqSeqs are the DLQ stream sequences of the dead letters, by event id.
func dlqSeqs(e *toolEnv) map[string]uint64 {
	seqs := map[string]uint64{}
	e.each(worker.DefaultDLQStream, func(m jetstream.Msg) {
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			e.t.Fatal(err)
		}
		meta, _ := m.Metadata()
		seqs[d.EventID] = meta.Sequence.Stream
	})
	return seqs
}

func TestDLQList(t *testing.T) {
	e := dlqFixture(t)
	seqs := dlqSeqs(e)
	// The worker finishes events concurrently: the DLQ's order is the order they failed in.
	inDLQOrder := func(ids ...string) []string {
		slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(seqs[a], seqs[b]) })
		return ids
	}
	only := func(id string) string { return fmt.Sprintf("%d-%d", seqs[id], seqs[id]) }
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"all", nil, inDLQOrder("rejected-1", "invalid-1", "rejected-2")},
		{"by reason", []string{"--reason", "graph_rejected"}, inDLQOrder("rejected-1", "rejected-2")},
		{"invalid", []string{"--reason", "invalid_event"}, []string{"invalid-1"}},
		{"none of a reason", []string{"--reason", "retries_exhausted"}, nil},
		{"one sequence", []string{"--seq", fmt.Sprint(seqs["invalid-1"])}, []string{"invalid-1"}},
		{"a range", []string{"--seq", only("rejected-2")}, []string{"rejected-2"}},
		{"a range and a reason", []string{"--seq", only("rejected-1"), "--reason", "graph_rejected"}, []string{"rejected-1"}},
		{"a range and another reason", []string{"--seq", only("rejected-1"), "--reason", "invalid_event"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ls", "--nats-url", e.natsURL}, tc.args...)
			out, _, err := e.run(runDLQ, args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := listedIDs(out); !slices.Equal(got, tc.want) {
				t.Errorf("table lists %v, want %v", got, tc.want)
			}
			if !strings.Contains(out, fmt.Sprintf("%d dead letters", len(tc.want))) {
				t.Errorf("no count of %d dead letters under the table", len(tc.want))
			}

			out, _, err = e.run(runDLQ, append(args, "--json")...)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for line := range strings.Lines(out) {
				var d worker.DeadLetter
				if err := json.Unmarshal([]byte(line), &d); err != nil {
					t.Fatalf("--json line %q: %v", line, err)
				}
				ids = append(ids, d.EventID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("--json lists %v, want %v", ids, tc.want)
			}
		})
	}
	out, _, _ := e.run(runDLQ, "ls", "--nats-url", e.natsURL, "--reason", "graph_rejected")
	if !regexp.MustCompile(`rejected-1\s+graph_rejected\s+404\s+1\s+\d{4}-\d\d-\d\dT`).MatchString(out) {
		t.Errorf("the table does not show rejected-1's status 404, one attempt and its time:\n%s", out)
	}
}

func TestDLQRedrive(t *testing.T) {
	e := dlqFixture(t)
	seqs := dlqSeqs(e)
	events := e.msgs(worker.DefaultStream)

	// A dry run changes nothing.
	out, _, err := e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--reason", "graph_rejected", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "would redrive seq"); n != 2 {
		t.Errorf("dry run names %d dead letters, want 2", n)
	}
	// A redrive publishes each event and waits for the stream's ack: anything the dry run
	// published is in the stream now.
	if got := e.msgs(worker.DefaultStream); got != events {
		t.Errorf("dry run published: the input stream holds %d, want %d", got, events)
	}
	if got := e.msgs(worker.DefaultDLQStream); got != 3 {
		t.Errorf("dry run removed dead letters: %d left, want 3", got)
	}

	// Graph learns the configuration; the redriven events are created and leave the DLQ.
	cfg := e.emu.Config()
	cfg.NotFoundIDs = nil
	e.emu.SetConfig(cfg)
	out, _, err = e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--reason", "graph_rejected")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "2 redriven") {
		t.Errorf("redrive output does not count 2 redriven")
	}
	e.waitMsgs(worker.DefaultResultStream, 4)
	created := map[string]bool{}
	e.each(worker.DefaultResultStream, func(m jetstream.Msg) {
		var r worker.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatal(err)
		}
		created[r.EventID] = true
	})
	for _, id := range []string{"rejected-1", "rejected-2"} {
		want := fmt.Sprintf("%s:redrive:%d", id, seqs[id])
		if !created[want] {
			t.Errorf("no result for %s (results: %v)", want, created)
		}
	}
	left := dlqSeqs(e)
	if len(left) != 1 || left["invalid-1"] == 0 {
		t.Errorf("DLQ holds %v, want only invalid-1", left)
	}

	// A second redrive finds nothing left of the reason.
	out, _, err = e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--reason", "graph_rejected")
	if err != nil || !strings.Contains(out, "0 redriven") {
		t.Errorf("second redrive: %v, output %q; want 0 redriven", err, out)
	}
}

func TestDLQRedriveRefusals(t *testing.T) {
	e := newToolEnv(t, emulator.Config{})
	e.startWorker()
	original := `{"hardwareConfigurationId":"0f3c9a1e`
	for i, d := range []worker.DeadLetter{
		{EventID: "cut", Reason: worker.InvalidEvent, Original: &original, OriginalTruncated: true},
		{EventID: "empty", Reason: worker.InvalidEvent},
	} {
		body, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		e.publish(worker.DefaultDLQSubject, fmt.Sprintf("dl-%d", i), body)
	}
	e.publish(worker.DefaultDLQSubject, "junk", []byte("not json"))

	for _, tc := range []struct {
		name string
		args []string
		want string // in the error
		out  string // in the output
	}{
		{"no selection", nil, "wants --reason, --seq or --tenant", ""},
		{"bad reason", []string{"--reason", "created"}, "want invalid_event", ""},
		{"bad range", []string{"--seq", "5-2"}, "want A-B", ""},
		{"truncated original", []string{"--seq", "1"}, "1 dead letters not redriven", "cut to fit the DLQ"},
		{"no original", []string{"--seq", "2"}, "1 dead letters not redriven", "holds no original"},
		{"not a dead letter", []string{"--seq", "3"}, "1 dead letters not redriven", "not a dead letter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := e.run(runDLQ, append([]string{"redrive", "--nats-url", e.natsURL}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(out, tc.out) {
				t.Errorf("output %q, want it to contain %q", out, tc.out)
			}
		})
	}
	if got := e.msgs(worker.DefaultDLQStream); got != 3 {
		t.Errorf("the DLQ holds %d messages, want all 3 kept", got)
	}
	if got := e.msgs(worker.DefaultStream); got != 0 {
		t.Errorf("%d events published, want none", got)
	}
	if _, _, err := e.run(runDLQ, "purge"); err == nil {
		t.Error("an unknown subcommand was accepted")
	}
}

// A DLQ holding several dead letters of one event (dead-lettered again once its duplicate
// window had passed, and a redriven copy of it that failed again) sends it once, from its
// newest dead letter, even when the selection names only its oldest: one event on the input
// subject, one create in Graph, and none of its dead letters left to redrive it again.
func TestDLQRedriveOncePerEvent(t *testing.T) {
	e := newToolEnv(t, emulator.Config{})
	e.startWorker()
	for i, id := range []string{"twice", "other", "twice", "twice:redrive:1"} {
		original := string(sandbox.Event(publishConfig, len(id)))
		body, err := json.Marshal(worker.DeadLetter{EventID: id, Reason: worker.GraphRejected, Original: &original})
		if err != nil {
			t.Fatal(err)
		}
		e.publish(worker.DefaultDLQSubject, fmt.Sprintf("dl-%d", i), body)
	}
	published := func() uint64 {
		s, err := e.js.Stream(context.Background(), worker.DefaultStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	before := published()

	out, _, err := e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--seq", "1", "--dry-run")
	if err != nil || strings.Count(out, "would redrive seq 4: event twice:redrive:1") != 1 || strings.Count(out, "would redrive") != 1 {
		t.Errorf("dry run: %v, output %q; want seq 4 alone", err, out)
	}
	out, _, err = e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--seq", "1")
	if err != nil || !strings.Contains(out, "1 redriven") {
		t.Fatalf("redrive: %v, output %q; want 1 redriven", err, out)
	}
	if got := published() - before; got != 1 {
		t.Errorf("%d events published to the input subject, want 1", got)
	}
	e.waitMsgs(worker.DefaultResultStream, 1)
	if left := dlqSeqs(e); len(left) != 1 || left["other"] != 2 {
		t.Errorf("DLQ holds %v, want only other at seq 2", left)
	}
	// Nothing of the event is left to send: a redrive of everything sends the other one alone.
	out, _, err = e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--reason", "graph_rejected")
	if err != nil || !strings.Contains(out, "1 redriven") {
		t.Fatalf("second redrive: %v, output %q; want 1 redriven", err, out)
	}
	e.waitMsgs(worker.DefaultResultStream, 2)
	e.sb.Settle(t)
	var ids []string
	e.each(worker.DefaultResultStream, func(m jetstream.Msg) {
		var r worker.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.EventID)
	})
	slices.Sort(ids)
	if want := []string{"other:redrive:2", "twice:redrive:4"}; !slices.Equal(ids, want) {
		t.Errorf("results for %v, want %v", ids, want)
	}
	if s := e.emu.Stats(); s.Creates != 2 {
		t.Errorf("%d creates in Graph, want 2 (one per event)", s.Creates)
	}
	if got := published() - before; got != 2 {
		t.Errorf("%d events published to the input subject in all, want 2", got)
	}
}

// tenantsDLQ is a multi-tenant deployment's DLQ, without a worker: dead letters of tenants A
// and B, one event id in both, and one of no tenant.
func tenantsDLQ(t *testing.T) *toolEnv {
	t.Helper()
	e := newToolEnv(t, emulator.Config{})
	e.createTenantsStream()
	if _, err := e.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: worker.DefaultDLQStream, Subjects: []string{worker.DefaultDLQSubject}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	for i, dl := range []struct {
		tenant, id string
		reason     worker.Outcome
	}{
		{tenantA, "e1", worker.GraphRejected},
		{tenantB, "e1", worker.GraphRejected},
		{tenantA, "e2", worker.InvalidEvent},
		{"", "e3", worker.GraphRejected},
		{tenantA, "e1", worker.GraphRejected}, // again, later
	} {
		original := tenantEvent(cmp.Or(dl.tenant, tenantA), i)
		d := worker.DeadLetter{EventID: dl.id, TenantID: dl.tenant, Reason: dl.reason, Original: &original}
		body, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		e.publish(worker.DefaultDLQSubject, fmt.Sprintf("dl-%d", i), body)
	}
	return e
}

func TestDLQListTenants(t *testing.T) {
	e := tenantsDLQ(t)
	row := regexp.MustCompile(`(?m)^(\d+)\s+(\S+)\s+(\S+)\s+(invalid_event|graph_rejected|retries_exhausted)\s`)
	for _, tc := range []struct {
		name string
		args []string
		want []string // seq tenant id, a row each
	}{
		{"all", nil, []string{"1 " + tenantA + " e1", "2 " + tenantB + " e1", "3 " + tenantA + " e2", "4 - e3", "5 " + tenantA + " e1"}},
		{"a tenant", []string{"--tenant", tenantA}, []string{"1 " + tenantA + " e1", "3 " + tenantA + " e2", "5 " + tenantA + " e1"}},
		{"in upper case", []string{"--tenant", strings.ToUpper(tenantB)}, []string{"2 " + tenantB + " e1"}},
		{"and a reason", []string{"--tenant", tenantA, "--reason", "invalid_event"}, []string{"3 " + tenantA + " e2"}},
		{"and sequences", []string{"--tenant", tenantA, "--seq", "2-4"}, []string{"3 " + tenantA + " e2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ls", "--nats-url", e.natsURL}, tc.args...)
			out, _, err := e.run(runDLQ, args...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out, "SEQ  TENANT") {
				t.Errorf("no TENANT column:\n%s", out)
			}
			var got []string
			for _, m := range row.FindAllStringSubmatch(out, -1) {
				got = append(got, m[1]+" "+m[2]+" "+m[3])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("table lists %v, want %v", got, tc.want)
			}
			out, _, err = e.run(runDLQ, append(args, "--json")...)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(out, "\n"); n != len(tc.want) {
				t.Errorf("--json lists %d, want %d", n, len(tc.want))
			}
		})
	}
	if _, _, err := e.run(runDLQ, "ls", "--nats-url", e.natsURL, "--tenant", "contoso"); err == nil || !strings.Contains(err.Error(), "want a tenant (directory) id") {
		t.Errorf("--tenant contoso: error %v, want a refusal", err)
	}
}

// A redrive sends each event back to its tenant's subject, once per event of a tenant: the
// same event id in two tenants is two events.
func TestDLQRedriveTenants(t *testing.T) {
	e := tenantsDLQ(t)
	subj := func(tenant string) string { return worker.DefaultSubject + "." + tenant }
	out, _, err := e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--tenant", tenantA, "--reason", "graph_rejected")
	if err != nil {
		t.Fatal(err)
	}
	if want := "redriven seq 5: event e1 (graph_rejected) as e1:redrive:5 to " + subj(tenantA) + " (older dead letters of it: seq 1)"; !strings.Contains(out, want) || !strings.Contains(out, "1 redriven") {
		t.Errorf("output %q, want %q alone", out, want)
	}
	if _, _, err := e.run(runDLQ, "redrive", "--nats-url", e.natsURL, "--tenant", tenantB); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	e.each(worker.DefaultStream, func(m jetstream.Msg) { ids[m.Subject()] = m.Headers().Get(jetstream.MsgIDHeader) })
	if want := map[string]string{subj(tenantA): "e1:redrive:5", subj(tenantB): "e1:redrive:2"}; !maps.Equal(ids, want) {
		t.Errorf("the input stream holds %v, want %v", ids, want)
	}
	var left []uint64
	e.each(worker.DefaultDLQStream, func(m jetstream.Msg) {
		meta, _ := m.Metadata()
		left = append(left, meta.Sequence.Stream)
	})
	if want := []uint64{3, 4}; !slices.Equal(left, want) {
		t.Errorf("the DLQ holds seq %v, want %v", left, want)
	}
}
