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
// that is already known (and drawing the 429s that find it again).

// levelKey is the level's key in the ledger bucket (event records are hex hashes): one per
// tenant in multi-tenant mode.
const levelKey = "pacer.level"

func (l *lane) levelKey() string {
	if l.tenant == "" {
		return levelKey
	}
	return levelKey + "." + l.tenant
}

// startPacer starts a lane's pacer at its learned level and keeps what it learns, until hard
// is done.
func (w *Worker) startPacer(ctx, hard context.Context, l *lane) {
	l.paced = true
	if l.tenant == "" || safeToken.MatchString(l.tenant) {
		w.loadLevel(ctx, w.ledgerNow().kv, l)
		go w.saveLevels(hard, l)
	}
	l.pacer.Load().showRate()
}

// levelRecord is what the bucket keeps of the level.
type levelRecord struct {
	Level float64   `json:"level"`
	At    time.Time `json:"at"`
}

// levelSaveEvery spaces the writes of a level that keeps changing (a cut every 200 ms at most).
const levelSaveEvery = time.Second

// loadLevel starts the pacer at the level kept in the bucket, if any.
func (w *Worker) loadLevel(ctx context.Context, kv jetstream.KeyValue, l *lane) {
	e, err := kv.Get(ctx, l.levelKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return
	}
	var r levelRecord
	if err == nil {
		err = json.Unmarshal(e.Value(), &r)
	}
	if err != nil {
		l.log.Warn("the learned rate could not be read; slow-starting", zap.Error(err))
		return
	}
	l.pacer.Load().learn(r.Level)
	l.log.Info("starting at the rate learned before", zap.Float64("level", r.Level), zap.Time("learned_at", r.At))
}

// saveLevels writes the newest level the pacer reports, at most once per levelSaveEvery,
// until ctx is done. A failed write is not retried: the next cut writes again.
func (w *Worker) saveLevels(ctx context.Context, l *lane) {
	for {
		var level float64
		select {
		case level = <-l.levels:
		case <-ctx.Done():
			return
		}
		data, _ := json.Marshal(levelRecord{Level: level, At: w.opts.now().UTC()}) // numbers and a time: cannot fail
		try, cancel := context.WithTimeout(ctx, natsTry)
		if _, err := w.ledgerNow().kv.Put(try, l.levelKey(), data); err != nil {
			l.log.Debug("the learned rate was not saved", zap.Error(err))
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
