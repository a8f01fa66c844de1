package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Claims keep two deliveries of one event from having Graph requests in flight at once:
// JetStream delivers an event again when a holder's keep-alives lapse (a server restart
// forgets them; another replica shortened the ack wait), and both deliveries would find the
// ledger empty and create twice.
//
// Within a process, a delivery waits for the one already being handled (local). Across
// processes, the right to send is a claim record in the ledger, written with compare-and-set
// and kept fresh while held; a claim whose holder stopped renewing it expires after
// ClaimTTL, and whoever takes it over looks the event up in Graph first (the old holder
// may have created it). A process handing an event back releases its claim, saying whether
// a create may have been sent, which spares the next delivery that lookup when none was.
type claims struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when the event's local handler is done
	held map[*claim]struct{}      // claims this process holds, renewed while held
}

// claim is a held claim record of one event.
type claim struct {
	id    eventID
	mu    sync.Mutex
	rev   uint64 // the ledger revision of our claim record
	until time.Time
	lost  bool // someone took it over: send nothing more
}

// claimPoll is how often a delivery waiting for another process's claim looks again.
const claimPoll = time.Second

// local waits until no other delivery of the event is being handled in this process and
// claims it; release ends the claim. It fails only when ctx is done first.
func (c *claims) local(ctx context.Context, eventID string) (release func(), err error) {
	for {
		c.mu.Lock()
		done, busy := c.busy[eventID]
		if !busy {
			if c.busy == nil {
				c.busy = make(map[string]chan struct{})
			}
			done = make(chan struct{})
			c.busy[eventID] = done
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				delete(c.busy, eventID)
				c.mu.Unlock()
				close(done)
			}, nil
		}
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// claimEvent looks the event up in the ledger and returns its recorded outcome, if any;
// otherwise it takes the event's claim (ev.claim) and says whether Graph may already hold
// the entity (ev.mightExist). It waits while another live process holds the claim.
func (w *Worker) claimEvent(ctx context.Context, ev *event) (record, error) {
	// A first delivery almost never has a record: claiming at once (a create that fails
	// when the key exists) spares the lookup, a round trip per event.
	look := ev.meta.NumDelivered > 1
	for {
		var rec record
		var rev uint64
		if look {
			err := w.retryNATS(ctx, ev.log, "ledger get", func(ctx context.Context) (err error) {
				rec, rev, err = w.ledgerNow().get(ctx, ev.id)
				return err
			})
			if err != nil || rec.done() {
				return rec, err
			}
		}
		look = true
		now := w.opts.now()
		// Delivered before, and no word from that delivery: it may have created the event.
		mightExist := ev.meta.NumDelivered > 1
		if c := rec.Claim; c != nil {
			if c.Owner != "" && c.Owner != w.owner && now.Before(c.Until) {
				ev.log.Debug("another process holds the event; waiting", zap.Time("until", c.Until))
				if err := away(ev, func() error { return sleep(ctx, claimPoll) }); err != nil {
					return record{}, err
				}
				continue
			}
			// Released with word of what was sent, or taken over from a holder that stopped
			// renewing it, who may have sent anything.
			mightExist = c.Sent || c.Owner != ""
		}
		held := &claim{id: ev.id, until: now.Add(w.cfg.ClaimTTL)}
		mine := record{Claim: &claimState{Owner: w.owner, Until: held.until}}
		err := w.retryNATS(ctx, ev.log, "ledger claim", func(ctx context.Context) (err error) {
			held.rev, err = w.ledgerNow().write(ctx, ev.id, mine, rev)
			if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return nil // someone else wrote first: look again
			}
			return err
		})
		if err != nil {
			return record{}, err
		}
		if held.rev == 0 {
			continue
		}
		ev.claim, ev.mightExist = held, mightExist
		w.claims.hold(held)
		return record{}, nil
	}
}

// releaseClaim gives up the event's claim, recording whether a create may have been sent.
// It fails quietly: an unreleased claim expires, and whoever takes it over reconciles.
func (w *Worker) releaseClaim(ev *event) {
	c := ev.claim
	ev.claim = nil
	w.claims.drop(c)
	c.mu.Lock()
	rev, lost := c.rev, c.lost
	c.mu.Unlock()
	if lost {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsTry)
	defer cancel()
	released := record{Claim: &claimState{Sent: ev.mightExist || ev.attempts > 0}}
	if _, err := w.ledgerNow().write(ctx, ev.id, released, rev); err != nil {
		ev.log.Debug("claim not released; it expires", zap.Error(err))
	}
}

// usable says whether the claim still gives the right to send a request now: not taken
// over, and with at least half its time left, so that a request sent now ends before anyone
// else could take the claim over (ClaimTTL is more than twice a request's time limit).
// A claim short of time is renewed first.
func (w *Worker) usable(ctx context.Context, ev *event) bool {
	c := ev.claim
	c.mu.Lock()
	lost, left := c.lost, c.until.Sub(w.opts.now())
	c.mu.Unlock()
	if lost {
		return false
	}
	if left >= w.cfg.ClaimTTL/2 {
		return true
	}
	return w.renewClaim(ctx, c) == nil
}

// renewClaim extends a held claim by ClaimTTL from now.
func (w *Worker) renewClaim(ctx context.Context, c *claim) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost {
		return errClaimLost
	}
	until := w.opts.now().Add(w.cfg.ClaimTTL)
	try, cancel := context.WithTimeout(ctx, natsTry)
	defer cancel()
	rev, err := w.ledgerNow().write(try, c.id, record{Claim: &claimState{Owner: w.owner, Until: until}}, c.rev)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		c.lost = true
		return errClaimLost
	case err != nil:
		w.store.failed(err)
		return err
	}
	w.store.succeeded()
	c.rev, c.until = rev, until
	return nil
}

// errClaimLost: another process took the event's claim over.
var errClaimLost = errors.New("claim taken over by another process")

func (c *claims) hold(cl *claim) {
	c.mu.Lock()
	if c.held == nil {
		c.held = make(map[*claim]struct{})
	}
	c.held[cl] = struct{}{}
	c.mu.Unlock()
}

func (c *claims) drop(cl *claim) {
	c.mu.Lock()
	delete(c.held, cl)
	c.mu.Unlock()
}

// renew keeps every held claim fresh until ctx is done: those with less than half their time
// left are extended each round.
func (c *claims) renew(ctx context.Context, w *Worker) {
	every := max(w.cfg.ClaimTTL/6, 50*time.Millisecond)
	var due []*claim
	for sleep(ctx, every) == nil {
		now := w.opts.now()
		due = due[:0]
		c.mu.Lock()
		for cl := range c.held {
			cl.mu.Lock()
			if cl.until.Sub(now) < w.cfg.ClaimTTL/2 {
				due = append(due, cl)
			}
			cl.mu.Unlock()
		}
		c.mu.Unlock()
		for _, cl := range due {
			_ = w.renewClaim(ctx, cl)
		}
	}
}

func (c *claim) isLost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}
