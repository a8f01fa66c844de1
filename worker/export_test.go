package worker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// BreakerMinRequests lets the tests outside the package bound what the breaker lets through.
const BreakerMinRequests = breakerMinRequests

// Replica is a worker's pacers, one per tenant, kept in step with the other replicas through
// a bucket, without the rest of a worker, for share_test.go.
type Replica struct {
	r      *replicas
	pacers map[string]*pacer // by tenant
	Stop   func()            // a shutdown: gives its share back
}

// StartReplica joins the replicas in kv as owner, with a pacer for each tenant ("" for a
// single tenant) at its level kept in kv, its heartbeat renewed every every, until ctx is
// done (a crash: its heartbeat stays) or Stop.
func StartReplica(ctx context.Context, kv jetstream.KeyValue, now func() time.Time, owner string, tenants []string, every time.Duration, log *zap.Logger) *Replica {
	rp := &Replica{pacers: map[string]*pacer{}}
	byKey := map[string]*pacer{}
	for _, t := range tenants {
		p := newPacerAt(100, 1000, 1, nil, now)
		rp.pacers[t], byKey[levelKeyOf(t)] = p, p
	}
	rp.r = &replicas{
		owner: owner, kv: func() jetstream.KeyValue { return kv }, log: log, now: now,
		every: every, stale: shareStale,
		pacers: func() map[string]*pacer { return byKey },
	}
	stop := rp.r.start(ctx)
	saving, stopSaving := context.WithCancel(ctx)
	for key, p := range byKey {
		p.setShare(rp.r.share())
		loadLevel(ctx, kv, key, p, log)
		levels := make(chan float64, 1)
		p.setOnLevel(levelReporter(levels))
		go rp.r.saveLevels(saving, levels, key, log)
	}
	rp.Stop = func() { stopSaving(); stop() }
	return rp
}

// ShareStale is how old a heartbeat may be before its replica counts as gone.
const ShareStale = shareStale

func (r *Replica) Throttled(tenant string, d time.Duration) { r.pacers[tenant].throttled(d) }

// Level is what the replica's pacer of tenant is known to get; Share its part of each tenant.
func (r *Replica) Level(tenant string) float64 { return r.pacers[tenant].learned() }
func (r *Replica) Share(tenant string) float64 {
	p := r.pacers[tenant]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.share
}

// LevelKey is the key of a tenant's level.
func LevelKey(tenant string) string { return levelKeyOf(tenant) }
