package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/hwstate/hwstate/worker"
)

// Running is a worker started on the sandbox.
type Running struct {
	*worker.Worker
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's answer, once done is closed
}

// readyWithin bounds how long a worker may take to make its streams and bind its consumer:
// generous, for a machine shared by parallel test runs.
const readyWithin = 30 * time.Second

// StartWorker runs a worker on the sandbox's JetStream, sending creates through creator,
// until Stop is called or ctx ends. It returns once the worker is bound to its consumer.
func (sb *Sandbox) StartWorker(ctx context.Context, creator worker.Creator, cfg worker.Config, opts ...worker.Option) (*Running, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Running{Worker: worker.New(sb.JS, creator, cfg, opts...), cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = r.Run(ctx)
		close(r.done)
	}()
	deadline := time.After(readyWithin)
	for !r.Ready() {
		select {
		case <-r.done:
			return nil, fmt.Errorf("the worker ended before it was ready: %v", r.err)
		case <-deadline:
			_ = r.Stop(context.Background())
			return nil, fmt.Errorf("the worker was not ready within %s", readyWithin)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return r, nil
}

// Stop signals shutdown and waits, as long as ctx lets it, for Run to return; it returns
// Run's error, and may be called more than once.
func (r *Running) Stop(ctx context.Context) error {
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("the worker did not stop: %w", ctx.Err())
	}
}
