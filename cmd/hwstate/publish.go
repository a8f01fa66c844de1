package main

import (
	"context"
	"errors"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/internal/backfill"
	"github.com/hwstate/hwstate/worker"
)

func runPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("publish", stdout, stderr, "usage: hwstate publish --file F.ndjson [flags]\n\n"+
		"Backfill: publishes each line of the file as one event, with the Nats-Msg-Id set to the hex SHA-256\n"+
		"of the line, so a re-run (within the input stream's one-hour duplicate window) publishes nothing\n"+
		"twice; later, the worker's idempotency ledger answers a repeat without calling Graph. Lines that\n"+
		"are not valid events are reported by number and not published; blank lines are skipped.\n\n"+
		"Many tenants (multi-tenant mode): with --tenant every event goes to <subject>.<tenant>; without\n"+
		"it, a line whose body has a \"tenantId\" goes to <subject>.<tenantId>, and any other to <subject>.\n"+
		"A line whose tenantId differs from --tenant is reported and not published. A tenant's event's\n"+
		"Nats-Msg-Id hashes its tenant too, so one file published to two tenants is two sets of events.")
	var conn natsFlags
	conn.register(fs)
	cfg := backfill.Config{Out: stdout, Progress: stderr}
	fs.StringVar(&cfg.Subject, "subject", worker.DefaultSubject, "input subject: where the events go")
	fs.StringVar(&cfg.Tenant, "tenant", "", "multi-tenant mode: the tenant (directory) id every event is for; the events go to <subject>.<tenant>")
	fs.StringVar(&cfg.File, "file", "", "the events, one JSON event a line (NDJSON); - for standard input")
	fs.BoolVar(&cfg.Validate, "validate", false, "check every line and report the bad ones by number; publish nothing")
	fs.IntVar(&cfg.MaxPending, "max-pending", 256, "events published and not yet acknowledged by the stream, at most")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.File == "" {
		return errors.New("--file is required (- for standard input)")
	}
	cfg.Dial = func(opts ...jetstream.JetStreamOpt) (jetstream.JetStream, func(), error) {
		nc, js, err := conn.connect(conn.url(), opts...)
		if err != nil {
			return nil, nil, err
		}
		return js, nc.Close, nil
	}
	return backfill.Run(ctx, cfg)
}
