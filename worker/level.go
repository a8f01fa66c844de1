package worker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// The level the pacer learned from Graph's 429s is kept in the ledger bucket, so that a
// restarted worker, or a new replica, starts there instead of slow-starting towards a limit
// that is already known (and drawing the 429s that find it again), and so that the other
// replicas take it at once (share.go). It is the tenant's level: what all replicas together
// are known to get.

// levelKey is the level's key in the ledger bucket (event records are hex hashes): one per
// tenant in multi-tenant mode.
const levelKey = "pacer.level"

func (l *lane) levelKey() string { return levelKeyOf(l.tenant) }

// levelKeyOf is the level key of a tenant ("" in single-tenant mode).
func levelKeyOf(tenant string) string {
	if tenant == "" {
		return levelKey
	}
	return levelKey + "." + tenant
}

// startPacer starts a lane's pacer at its learned level and keeps what it learns, until hard
// is done.
// It starts at this replica's share of the tenant (share.go).
func (w *Worker) startPacer(ctx, hard context.Context, l *lane) {
	l.paced = true
	p := l.pacer.Load()
	p.setShare(w.replicas.share())
	if l.tenant == "" || safeToken.MatchString(l.tenant) {
		loadLevel(ctx, w.ledgerNow().kv, l.levelKey(), p, l.log)
		go w.replicas.saveLevels(hard, l.levels, l.levelKey(), l.log)
	}
	p.showRate()
}

// levelRecord is what the bucket keeps of the level.
type levelRecord struct {
	Level float64   `json:"level"`
	At    time.Time `json:"at"`
	// Owner is the replica that learned it, which need not take it again from the bucket.
	Owner string `json:"owner,omitempty"`
}

// levelSaveEvery spaces the writes of a level that keeps changing (a cut every 200 ms at most).
const levelSaveEvery = time.Second

// loadLevel starts the pacer at the level kept in the bucket under key, if any.
func loadLevel(ctx context.Context, kv jetstream.KeyValue, key string, p *pacer, log *zap.Logger) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return
	}
	var r levelRecord
	if err == nil {
		err = json.Unmarshal(e.Value(), &r)
	}
	if err != nil {
		log.Warn("the learned rate could not be read; slow-starting", zap.Error(err))
		return
	}
	p.learn(r.Level)
	log.Info("starting at the rate learned before", zap.Float64("level", r.Level), zap.Time("learned_at", r.At))
}

// saveLevels writes the newest level a pacer reports under key, at most once per
// levelSaveEvery, until ctx is done. A failed write is not retried: the next cut writes again.
func (r *replicas) saveLevels(ctx context.Context, levels <-chan float64, key string, log *zap.Logger) {
	for {
		var level float64
		select {
		case level = <-levels:
		case <-ctx.Done():
			return
		}
		data, _ := json.Marshal(levelRecord{Level: level, At: r.now().UTC(), Owner: r.owner}) // numbers and a time: cannot fail
		try, cancel := context.WithTimeout(ctx, natsTry)
		if _, err := r.kv().Put(try, key, data); err != nil {
			log.Debug("the learned rate was not saved", zap.Error(err))
		}
		cancel()
		if sleep(ctx, levelSaveEvery) != nil {
			return
		}
	}
}

// levelReporter is the pacer's onLevel: it hands the newest level to saveLevels without
// blocking, dropping one that a newer one replaces.
func levelReporter(levels chan float64) func(float64) {
	return func(level float64) {
		for {
			select {
			case levels <- level:
				return
			default:
			}
			select {
			case <-levels: // an older level not yet saved: the newer one replaces it
			default:
			}
		}
	}
}
