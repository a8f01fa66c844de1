package worker

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config is what the worker needs to know about its streams and its manners towards Graph.
// The zero value is the contract's defaults (CONTRACT.md section 4).
type Config struct {
	Stream, Subject, Consumer   string
	ResultStream, ResultSubject string
	DLQStream, DLQSubject       string

	// Rate is Graph creates per second for this process; Burst how many may go at once.
	Rate  float64
	Burst int
	// Concurrency bounds the creates in flight.
	Concurrency int
	// FetchBatch is how many messages one pull asks for; 0 derives it from Rate and AckWait.
	FetchBatch int
	AckWait    time.Duration
	// MaxAttempts bounds the Graph attempts that failed transiently.
	MaxAttempts int
	// MaxRetryAfter is the longest wait one Retry-After from Graph can impose.
	MaxRetryAfter time.Duration
	// ShutdownGrace bounds shutdown: what has no answer by then is handed back.
	ShutdownGrace time.Duration
	// ClaimTTL is how long a claim on an event (the right to send its creates) lasts without
	// renewal. It must exceed one Graph request's time limit: a process cut off from NATS
	// loses its claims only after any create it had sent has ended.
	ClaimTTL time.Duration

	LedgerBucket string
	LedgerTTL    time.Duration
	Replicas     int
	Retention    time.Duration
}

// Defaults of CONTRACT.md section 4.
const (
	DefaultStream        = "HWSTATE_EVENTS"
	DefaultSubject       = "hwstate.userstate.create"
	DefaultConsumer      = "hwstate-worker"
	DefaultResultStream  = "HWSTATE_RESULTS"
	DefaultResultSubject = "hwstate.userstate.result"
	DefaultDLQStream     = "HWSTATE_DLQ"
	DefaultDLQSubject    = "hwstate.userstate.dlq"
	DefaultLedgerBucket  = "HWSTATE_LEDGER"
	DefaultRate          = 5
	DefaultBurst         = 1
	DefaultConcurrency   = 32
	DefaultAckWait       = 60 * time.Second
	DefaultMaxAttempts   = 10
	DefaultMaxRetryAfter = 5 * time.Minute
	DefaultShutdownGrace = 25 * time.Second
	DefaultClaimTTL      = 45 * time.Second
	DefaultLedgerTTL     = 168 * time.Hour
	DefaultRetention     = 720 * time.Hour
)

// maxAckPending is the consumer's limit on unacknowledged messages; fetches never exceed it.
const maxAckPending = 1000

func (c Config) withDefaults() Config {
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&c.Stream, DefaultStream}, {&c.Subject, DefaultSubject}, {&c.Consumer, DefaultConsumer},
		{&c.ResultStream, DefaultResultStream}, {&c.ResultSubject, DefaultResultSubject},
		{&c.DLQStream, DefaultDLQStream}, {&c.DLQSubject, DefaultDLQSubject},
		{&c.LedgerBucket, DefaultLedgerBucket},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
	positive(&c.Rate, DefaultRate)
	positive(&c.Burst, DefaultBurst)
	positive(&c.Concurrency, DefaultConcurrency)
	positive(&c.AckWait, DefaultAckWait)
	positive(&c.MaxAttempts, DefaultMaxAttempts)
	positive(&c.MaxRetryAfter, DefaultMaxRetryAfter)
	positive(&c.ShutdownGrace, DefaultShutdownGrace)
	positive(&c.ClaimTTL, DefaultClaimTTL)
	positive(&c.LedgerTTL, DefaultLedgerTTL)
	positive(&c.Replicas, 1)
	positive(&c.Retention, DefaultRetention)
	return c
}

// positive sets a number that is not above zero (unset, or nonsense) to its default.
func positive[T int | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// fetchBatch is the configured pull size or, for auto, half of what the rate limit (perSecond) lets the
// worker finish within one ack wait (the consumer's, as the server holds it): anything pulled
// beyond that would sit in memory long enough to need keep-alives, and a large prefetch is
// what turns a slow tenant into redeliveries.
func (c Config) fetchBatch(perSecond float64, ackWait time.Duration) int {
	n := c.FetchBatch
	if n <= 0 {
		n = int(perSecond * ackWait.Seconds() / 2)
	}
	return max(1, min(n, maxAckPending))
}

// holdLimit is how many messages the worker holds at once: enough to keep every send slot busy
// and one pull's worth waiting for its turn.
func (c Config) holdLimit(perSecond float64, ackWait time.Duration) int {
	return min(max(c.fetchBatch(perSecond, ackWait), c.Concurrency), maxAckPending)
}

func (c Config) storage() jetstream.StorageType { return jetstream.FileStorage }
