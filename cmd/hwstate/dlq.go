package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/hwstate/hwstate/internal/dlq"
	"github.com/hwstate/hwstate/worker"
)

const dlqUsage = `usage: hwstate dlq ls [--reason R] [--seq A-B] [--tenant ID] [--json] [flags]
       hwstate dlq redrive (--reason R | --seq A-B | --tenant ID) [--dry-run] [flags]

ls lists the dead letters: DLQ stream sequence, event id, reason, Graph's status, the error, when.
redrive publishes the chosen dead letters' original events to the input subject again, at most
once per event however many dead letters of it the DLQ holds: an event is chosen when any of its
dead letters is, and its newest is sent, with the Nats-Msg-Id "<event id>:redrive:<DLQ sequence>"
(a fresh id, so the worker's idempotency ledger lets it through, and the same on a re-run, so a
redrive repeated after a crash is dropped as a duplicate); every dead letter of the event is
deleted from the DLQ stream once that publish is acknowledged, the one sent last. A dead letter
whose original was cut to fit the DLQ is not redriven.

Many tenants (multi-tenant mode): a dead letter names its tenant ("tenantId"), shown in ls's TENANT
column; --tenant selects one tenant's; redrive sends each event back to its tenant's subject,
<subject>.<tenantId>, and an event's id is its tenant's alone.`

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "ls" && args[0] != "redrive") {
		fmt.Fprintln(stderr, dlqUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("want a subcommand: ls or redrive")
	}
	sub := args[0]
	fs := newFlagSet("dlq "+sub, stdout, stderr, dlqUsage)
	var conn natsFlags
	conn.register(fs)
	stream := fs.String("dlq-stream", worker.DefaultDLQStream, "stream of dead letters")
	var sel dlq.Selection
	fs.Func("reason", "only dead letters of this reason: invalid_event, graph_rejected, retries_exhausted", sel.SetReason)
	fs.Func("seq", "only dead letters with DLQ stream sequences from A to B (A-B, or one number)", sel.SetSeq)
	fs.Func("tenant", "multi-tenant mode: only dead letters of this tenant (directory) id", sel.SetTenant)
	asJSON, dryRun := new(bool), new(bool)
	subject := new(string)
	if sub == "ls" {
		fs.BoolVar(asJSON, "json", false, "print each dead letter's body, one a line, instead of a table")
	} else {
		fs.StringVar(subject, "subject", worker.DefaultSubject, "input subject: where the events go back to")
		fs.BoolVar(dryRun, "dry-run", false, "say what would be redriven; change nothing")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if sub == "redrive" && !sel.Narrowed() {
		return errors.New("redrive wants --reason, --seq or --tenant (or more of them), so that nothing is redriven by accident")
	}
	nc, js, err := conn.connect(conn.url())
	if err != nil {
		return err
	}
	defer nc.Close()
	if sub == "ls" {
		return dlq.List(ctx, js, *stream, sel, *asJSON, stdout)
	}
	r := dlq.Redrive{JS: js, Stream: *stream, Subject: *subject, DryRun: *dryRun, Out: stdout}
	return r.Run(ctx, sel)
}
