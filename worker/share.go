package worker

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Replicas on one tenant split what it takes. Each adapts its own rate to the 429s it
// draws; alone, a replica that joins starts at the whole level another learned and sends on
// top of it, and one that leaves leaves its part unused until the others' slow probes find
// it (bench --scenario replicas: 61.6% of the budget in the 20 s after one of three
// stopped). So each replica keeps a heartbeat in the ledger bucket (a key per replica),
// counts the replicas whose heartbeat is fresh, and holds each of its pacers to 1/N of its
// tenant: the rate, the level and what Graph took all scale with the share
// (pacer.setShare). A 429 one replica draws teaches the tenant's level (its own over its
// share), which it writes to the tenant's level key; the others take it at once
// (pacer.adopt). The replicas of a worker are replicas for every tenant at once (each pulls
// from every tenant's consumer), so the heartbeat is per replica, and only the level per
// tenant.
//
// Freshness is a timestamp in the heartbeat's value, not a per-key TTL: a TTL needs
// nats-server 2.11 or later and the bucket made with AllowMsgTTL (and LimitMarkerTTL for a
// watcher to hear of an expiry), a change to a bucket operators may already run; a
// timestamp works with any server and bucket, and a test can age it with a fake clock. Its
// price is that replicas' clocks must agree to within a few seconds (shareStale is five
// heartbeats), which NTP gives by far. A replica that stops cleanly deletes its key, so its
// share returns at once; a dead one's returns when its heartbeat is shareStale old, and
// its key stays in the bucket (ignored) until the bucket's TTL removes it.
const (
	// shareEvery is how often a replica renews its heartbeat.
	shareEvery = 2 * time.Second
	// shareStale is how old a heartbeat may be before its replica counts as gone.
	shareStale = 5 * shareEvery
	// sharePrefix starts every replica's heartbeat key: sharePrefix + owner. Event records
	// are hex hashes and never take it.
	sharePrefix = "pacer.share."
	// pacerKeys matches the heartbeats and every tenant's level (level.go).
	pacerKeys = "pacer.>"
	// joinWait bounds how long a worker starting waits for the others' heartbeats: they
	// come in milliseconds, and a watcher the server refuses (the NATS permissions of a
	// deployment not yet updated for it) must not hold the start for long. What comes
	// later is taken as it comes.
	joinWait = time.Second
)

// shareRecord is a replica's heartbeat.
type shareRecord struct {
	At time.Time `json:"at"`
}

// replicas keeps a worker's pacers in step with the other replicas through the ledger
// bucket: its heartbeat, the others', and the levels they learn.
type replicas struct {
	owner string
	kv    func() jetstream.KeyValue // the ledger bucket as of now: setup may make it again
	log   *zap.Logger
	now   func() time.Time
	// every and stale are shareEvery and shareStale; tests shorten them.
	every, stale time.Duration
	// pacers are the pacers to keep in step, by the key of their tenant's level: a lane's
	// pacer may be replaced (its rate changed), so they are asked for each time.
	pacers func() map[string]*pacer

	counted atomic.Int64 // replicas counted, this one included; 0 before the first count
	// peers is when each other replica's heartbeat was written, by key; only the goroutine
	// of start touches it once join is over.
	peers map[string]time.Time
}

// shareRate starts keeping the worker's pacers in step with the other replicas, until ctx
// is done or stop is called (which gives this replica's share back to the others at once).
func (w *Worker) shareRate(ctx context.Context) (stop func()) {
	w.replicas = replicas{
		owner: w.owner,
		kv:    func() jetstream.KeyValue { return w.ledgerNow().kv },
		log:   w.log, now: w.opts.now,
		every: shareEvery, stale: shareStale,
		pacers: func() map[string]*pacer {
			m := map[string]*pacer{}
			for _, l := range w.lanes.all() {
				m[l.levelKey()] = l.pacer.Load()
			}
			return m
		},
	}
	return w.replicas.start(ctx)
}

// share is this replica's part of each tenant.
func (r *replicas) share() float64 {
	return 1 / float64(max(r.counted.Load(), 1))
}

// start joins the replicas (the count is known when it returns) and keeps in step with them
// until ctx is done or stop is called. stop deletes this replica's heartbeat.
func (r *replicas) start(ctx context.Context) (stop func()) {
	r.peers = map[string]time.Time{}
	ctx, cancel := context.WithCancel(ctx)
	updates := r.join(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.run(ctx, updates) }()
	return func() {
		cancel()
		wg.Wait()
		try, done := context.WithTimeout(context.Background(), natsTry)
		defer done()
		if err := r.kv().Delete(try, sharePrefix+r.owner); err != nil {
			r.log.Debug("this replica's share of the rate was not given back", zap.Error(err))
		}
	}
}

// join writes this replica's heartbeat and reads the others'. It returns the watcher's
// updates that follow (nil when the bucket could not be watched: run tries again).
func (r *replicas) join(ctx context.Context) <-chan jetstream.KeyValueEntry {
	r.beat(ctx)
	updates := r.watch(ctx)
	try := time.NewTimer(joinWait)
	defer try.Stop()
initial:
	for updates != nil {
		select {
		case e, ok := <-updates:
			if !ok {
				updates = nil
				break initial
			}
			if e == nil { // the end of what the bucket held
				break initial
			}
			r.seen(e, false)
		case <-try.C:
			r.log.Warn("the other replicas' shares of the rate could not be read in time")
			break initial
		case <-ctx.Done():
			return updates
		}
	}
	r.reshare()
	return updates
}

// run renews the heartbeat and follows the others' and the levels they learn, until ctx is
// done.
func (r *replicas) run(ctx context.Context, updates <-chan jetstream.KeyValueEntry) {
	tick := time.NewTicker(r.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.beat(ctx)
			if updates == nil {
				updates = r.watch(ctx)
			}
		case e, ok := <-updates:
			if !ok { // the bucket went away: watch it again once it is back
				updates = nil
				continue
			}
			if e != nil {
				r.seen(e, true)
			}
		}
		r.reshare()
	}
}

// watch follows every replica's heartbeat and every tenant's level, from what the bucket
// holds now; nil when it cannot.
func (r *replicas) watch(ctx context.Context) <-chan jetstream.KeyValueEntry {
	w, err := r.kv().Watch(ctx, pacerKeys)
	if err != nil {
		r.log.Debug("the other replicas' shares of the rate cannot be followed", zap.Error(err))
		return nil
	}
	return w.Updates()
}

// beat writes this replica's heartbeat. A failed write is not retried: the next one comes
// within shareEvery, well before the others count this replica gone.
func (r *replicas) beat(ctx context.Context) {
	data, _ := json.Marshal(shareRecord{At: r.now().UTC()}) // a time: cannot fail
	try, cancel := context.WithTimeout(ctx, natsTry)
	defer cancel()
	if _, err := r.kv().Put(try, sharePrefix+r.owner, data); err != nil {
		r.log.Debug("this replica's share of the rate was not renewed", zap.Error(err))
	}
}

// seen takes an entry of the bucket: another replica's heartbeat (or its removal), or a
// tenant's level another replica learned, which that tenant's pacer adopts when adopt says
// so (while running; on joining, each lane reads its level as it starts).
func (r *replicas) seen(e jetstream.KeyValueEntry, adopt bool) {
	put := e.Operation() == jetstream.KeyValuePut
	key := e.Key()
	if owner, ok := strings.CutPrefix(key, sharePrefix); ok {
		var s shareRecord
		switch {
		case owner == r.owner:
		case !put || json.Unmarshal(e.Value(), &s) != nil:
			delete(r.peers, key)
		default:
			r.peers[key] = s.At
		}
		return
	}
	var l levelRecord
	if !adopt || !put || json.Unmarshal(e.Value(), &l) != nil || l.Owner == r.owner || l.Level <= 0 {
		return
	}
	if p := r.pacers()[key]; p != nil {
		p.adopt(l.Level)
		r.log.Debug("another replica learned the tenant's rate", zap.String("key", key), zap.Float64("level", l.Level))
	}
}

// reshare counts the replicas alive (this one and those whose heartbeat is fresh) and
// gives every pacer its part, an equal share each: a pacer made since (a lane added, or its
// rate changed) gets it here too.
func (r *replicas) reshare() {
	now, n := r.now(), int64(1)
	for key, at := range r.peers {
		if now.Sub(at) < r.stale {
			n++
		} else {
			delete(r.peers, key) // gone: a heartbeat from it again puts it back
		}
	}
	if r.counted.Swap(n) != n {
		r.log.Info("replicas share each tenant's rate", zap.Int64("replicas", n))
	}
	for _, p := range r.pacers() {
		p.setShare(r.share())
	}
}
