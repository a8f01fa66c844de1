package main

import (
	"context"
	"io"

	"github.com/hwstate/hwstate/internal/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stdout, stderr, "usage: hwstate demo [flags]\n\nThe whole pipeline on this machine: embedded JetStream, the Graph emulator, sample events, and a summary; then one worker writing into three tenants side by side (one throttled hard, one refusing), and theirs.")
	var cfg demo.Config
	fs.IntVar(&cfg.Events, "events", 400, "valid events to create (the invalid, rejected and failing ones come on top)")
	fs.IntVar(&cfg.TenantEvents, "tenant-events", 30, "events for each tenant of the multi-tenant part")
	logLevel := fs.String("log-level", "error", "worker log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, true, stderr)
	if err != nil {
		return err
	}
	cfg.Log = log
	return demo.Run(ctx, cfg, stdout)
}
