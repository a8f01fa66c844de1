// Command hwstate turns a JetStream stream of Intune user-state events into Microsoft Graph
// creates. See README.md; `hwstate help` lists the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: its name, a line of help, and what it does with its arguments.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "the worker: consume events, create them in Graph, publish results and dead letters", runWorker},
		{"demo", "the whole pipeline on this machine with nothing configured, and a summary", runDemo},
		{"emulate-graph", "serve the Graph emulator (for compose and load tests)", runEmulator},
		{"publish", "backfill: publish a file of events, one a line, safe to re-run", runPublish},
		{"dlq", "dead letters: ls lists them, redrive sends chosen ones back to the input subject", runDLQ},
		{"bench", "the pipeline on this machine under a load scenario, and a figure table", runBench},
		{"version", "version, commit, Go and nats-server versions", runVersion},
	}
}

func main() {
	os.Exit(mainExit(os.Args[1:], os.Stdout, os.Stderr))
}

func mainExit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signalContext()
		defer stop()
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		default:
			fmt.Fprintf(stderr, "hwstate %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "hwstate: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hwstate <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n`hwstate <command> --help` lists a command's flags.")
}

// signalContext is cancelled by the first SIGINT or SIGTERM, so the command can drain; a
// second signal exits at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "hwstate: second signal, exiting now")
		os.Exit(130)
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
	}
}
