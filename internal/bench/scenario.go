package bench

import (
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/worker"
)

// scenario is one load the bench can put on the pipeline: what the emulated tenant
// does, how the worker is configured, and how events arrive.
type scenario struct {
	name, summary string
	events        int
	emulator      emulator.Config
	// Worker settings (HWSTATE_*).
	rate        float64
	burst       int
	concurrency int
	ackWait     time.Duration
	graphBatch  int // 0: auto
	fetchBatch  int // 0: auto
	// publishRate paces publishing while the worker runs (events/s); 0 publishes every event
	// before the worker starts, a backlog it drains.
	publishRate float64
	// publishCommand measures `hwstate publish` of events lines instead of the worker.
	publishCommand bool
	// duration, when set, runs the worker for that long instead of until every event has its
	// outcome; rates are then taken after warmup.
	duration, warmup time.Duration
	// tenants, when set, runs the worker in multi-tenant mode with that many tenants, each
	// emulated with the emulator's configuration and given an equal share of the events
	// as a backlog; tenantsFile is their tenants file (HWSTATE_TENANTS), made by the run.
	tenants     int
	tenantsFile string
	// replicas is how many workers run on the consumer (0: one).
	replicas int
	// restartAt, when set, stops the workers that long into the run and starts them again.
	restartAt time.Duration
	// stopOneAt, when set, stops one of the replicas that long into the run, for good.
	stopOneAt time.Duration
	// ceilings measures the emulator alone and JetStream alone after the run, for a scenario
	// whose rate nothing but the machine bounds.
	ceilings bool
	targets  []target
}

// unlimitedRate stands for "no limit": the worker needs some rate, and this one is never reached.
const unlimitedRate = 1e6

func scenarios() []scenario {
	return []scenario{
		{
			name: "unlimited", summary: "zero-latency emulator, no limit: what the worker costs per event",
			events: 100_000, rate: unlimitedRate, burst: 1000, concurrency: 64, ackWait: 60 * time.Second, // $batch auto
			ceilings: true,
			targets: []target{
				{figure: "events/s", atLeast: true, value: 9000},
				{figure: "cpu ms/1000 events", value: 100, unbatched: 150},
				{figure: "peak RSS MiB", value: 30},
			},
		},
		{
			name: "latency", summary: "100 ms per Graph request, rate 400/s, concurrency 64, events published at 400/s",
			events: 12_000, emulator: emulator.Config{Latency: 100 * time.Millisecond},
			rate: 400, burst: 1, concurrency: 64, ackWait: 60 * time.Second, graphBatch: 1, publishRate: 400,
			targets: []target{{figure: "events/s", atLeast: true, value: 0.97 * 400}},
		},
		{
			name: "tenant", summary: "tenant allows 100 writes per sliding 20 s window (Retry-After); worker set to 10x that (50/s)",
			events: 3000, emulator: emulator.Config{Window: emulator.Window{Limit: 100, Per: 20 * time.Second}},
			rate: 50, burst: 1, concurrency: 32, ackWait: 60 * time.Second, graphBatch: 1,
			duration: 3*time.Minute + 30*time.Second, warmup: 20 * time.Second,
			targets: []target{
				{figure: "budget used %", atLeast: true, value: 95},
				{figure: "429 share %", value: 2},
			},
		},
		{
			name: "tenant-bucket", summary: "tenant token bucket 100/s (burst 5, Retry-After); worker set to 1,000/s",
			events: 20_000, emulator: emulator.Config{Rate: 100, Burst: 5},
			rate: 1000, burst: 1, concurrency: 64, ackWait: 60 * time.Second, graphBatch: 1,
			duration: time.Minute, warmup: 20 * time.Second,
			targets: []target{
				{figure: "budget used %", atLeast: true, value: 95},
				{figure: "429 share %", value: 2},
				{figure: "429s per 1,000 creates, first 20 s", value: 20},
			},
		},
		{
			name: "replicas", summary: "tenant token bucket 100/s (burst 5, Retry-After); three workers on one consumer, each set to 1,000/s; one stopped after 60 s",
			events: 20_000, emulator: emulator.Config{Rate: 100, Burst: 5}, replicas: 3,
			// A pull of 100 each (3 s at a third of the tenant): auto pulls as many as the rate
			// set lets a worker finish in half an ack wait, here the consumer's 1,000 pending,
			// and the first replica to pull holds them all while the others idle.
			fetchBatch: 100,
			rate:       1000, burst: 1, concurrency: 64, ackWait: 60 * time.Second, graphBatch: 1,
			duration: 90 * time.Second, warmup: 20 * time.Second, stopOneAt: 60 * time.Second,
			targets: []target{
				{figure: "budget used %", atLeast: true, value: 95},
				{figure: "429 share %", value: 2},
			},
		},
		{
			name: "restart", summary: "tenant token bucket 100/s (burst 5, Retry-After); worker set to 1,000/s, stopped after 30 s and started again",
			events: 20_000, emulator: emulator.Config{Rate: 100, Burst: 5}, restartAt: 30 * time.Second,
			rate: 1000, burst: 1, concurrency: 64, ackWait: 60 * time.Second, graphBatch: 1,
			duration: time.Minute, warmup: 20 * time.Second,
			targets: []target{
				{figure: "429s per 1,000 creates, 20 s after the restart", value: 20},
			},
		},
		{
			name: "backlog", summary: "2,000 pending events drained at 20 creates/s with a 10 s ack wait",
			events: 2000, rate: 20, burst: 1, concurrency: 32, ackWait: 10 * time.Second, graphBatch: 1,
			targets: []target{
				{figure: "redeliveries", value: 0},
				{figure: "duplicate creates", value: 0},
			},
		},
		{
			name: "publish", summary: "`hwstate publish` of an NDJSON file into the local JetStream",
			events: 1_000_000, publishCommand: true,
			targets: []target{
				{figure: "events/s", atLeast: true, value: 40000},
				{figure: "RSS growth MiB (after 10%)", value: 8},
			},
		},
		{
			name: "tenants", summary: "1,000 tenants (--tenants), each allowing 5 creates/s (token bucket, burst 1), from one worker; a backlog for each",
			tenants: 1000, events: 1000 * 450, emulator: emulator.Config{Rate: 5, Burst: 1},
			rate: 5, burst: 1, concurrency: worker.DefaultConcurrency, ackWait: 60 * time.Second, // $batch auto
			duration: time.Minute, warmup: 20 * time.Second,
			targets: []target{
				{figure: "budget used %, median over tenants", atLeast: true, value: 90},
				{figure: "429 share %", value: 5},
				{figure: "tenants whose backlog ran out", value: 0},
				{figure: "duplicate creates", value: 0},
			},
		},
		{
			name: "idle", summary: "the worker with nothing to do",
			rate: worker.DefaultRate, burst: 1, concurrency: worker.DefaultConcurrency, ackWait: worker.DefaultAckWait, graphBatch: 1,
			duration: 25 * time.Second, warmup: 5 * time.Second,
			targets: []target{
				{figure: "cpu % of a core", value: 1},
				{figure: "peak RSS MiB", value: 25},
			},
		},
	}
}
