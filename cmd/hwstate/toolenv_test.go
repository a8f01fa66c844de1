package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

const toolToken = "tool-test-token"

// toolEnv is what the tools' tests run against: the sandbox on a test server.
type toolEnv struct {
	t        *testing.T
	sb       *proctest.Sandbox
	natsURL  string
	js       jetstream.JetStream
	emu      *emulator.Emulator
	graphURL string // the emulator's Graph base URL
}

func newToolEnv(t *testing.T, emuCfg emulator.Config) *toolEnv {
	t.Helper()
	ns := natstest.Start(t)
	emuCfg.Token = toolToken
	sb := proctest.NewSandbox(t, emuCfg, sandbox.WithNATS(ns.ClientURL()))
	return &toolEnv{t: t, sb: sb, natsURL: ns.ClientURL(), js: sb.JS, emu: sb.Emulator, graphURL: sb.GraphURL}
}

// createInputStream makes the input stream as the worker would, with the given duplicate
// window.
func (e *toolEnv) createInputStream(duplicates time.Duration) {
	e.t.Helper()
	if _, err := sandbox.CreateInputStream(context.Background(), e.js, duplicates); err != nil {
		e.t.Fatal(err)
	}
}

// startWorker runs a worker with quick retries until the test ends; it returns once the
// worker has made its streams and bound its consumer.
func (e *toolEnv) startWorker() {
	e.t.Helper()
	w, err := e.sb.StartWorker(context.Background(), e.sb.Client(5*time.Second),
		worker.Config{Rate: 1000, Burst: 50, AckWait: 10 * time.Second, MaxAttempts: 3},
		worker.WithLogger(zaptest.NewLogger(e.t)), worker.WithBackoff(10*time.Millisecond, 50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := w.Stop(context.Background()); err != nil {
			e.t.Errorf("worker: %v", err)
		}
	})
}

// waitFor polls cond for up to 30 s: generous, for a machine shared by parallel test runs.
func (e *toolEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	proctest.WaitFor(e.t, 30*time.Second, what, cond)
}

// msgs is the number of messages now in the stream (0 when it does not exist).
func (e *toolEnv) msgs(stream string) uint64 {
	e.t.Helper()
	n, err := sandbox.Count(context.Background(), e.js, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitMsgs waits until the stream holds n messages.
func (e *toolEnv) waitMsgs(stream string, n uint64) {
	e.t.Helper()
	e.waitFor(stream+" messages", func() bool { return e.msgs(stream) >= n })
	if got := e.msgs(stream); got != n {
		e.t.Fatalf("%s holds %d messages, want %d", stream, got, n)
	}
}

// each reads every message of the stream.
func (e *toolEnv) each(stream string, fn func(jetstream.Msg)) {
	e.t.Helper()
	proctest.EachMessage(e.t, e.js, stream, fn)
}

// publish sends one event with the given id.
func (e *toolEnv) publish(subject, id string, body []byte) {
	e.t.Helper()
	if err := sandbox.Publish(context.Background(), e.js, subject, id, body); err != nil {
		e.t.Fatal(err)
	}
}

// run calls a command as main would, with the environment server's URL first.
func (e *toolEnv) run(cmd func(context.Context, []string, io.Writer, io.Writer) error, args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	var out, errOut proctest.Buffer
	err = cmd(context.Background(), args, &out, &errOut)
	e.t.Logf("%v:\n%s%s(err: %v)", args, out.String(), errOut.String(), err)
	return out.String(), errOut.String(), err
}

// createTenantsStream makes the input stream of multi-tenant mode, which captures every
// tenant's subject and not the input subject itself.
func (e *toolEnv) createTenantsStream() {
	e.t.Helper()
	_, err := e.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: worker.DefaultStream, Subjects: []string{worker.DefaultSubject + ".>"},
		Storage: jetstream.FileStorage, Duplicates: time.Hour,
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// bySubject counts the stream's messages by subject.
func (e *toolEnv) bySubject(stream string) map[string]int {
	e.t.Helper()
	n := map[string]int{}
	e.each(stream, func(m jetstream.Msg) { n[m.Subject()]++ })
	return n
}
