package proctest

import (
	"testing"
	"time"
)

// pollEvery is how often Poll looks again: often enough that a test waits little past the
// moment its condition holds, seldom enough to leave the machine to the code under test.
const pollEvery = 10 * time.Millisecond

// Poll calls cond until it holds or limit has passed, and says whether it held. It is the
// one way tests wait for something to happen: for a condition that can be seen (a count, a
// state, a line of output), never a sleep that hopes enough time has passed.
func Poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}

// WaitFor polls cond until it holds, failing t with what it waited for once limit has passed.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(limit, cond) {
		t.Fatalf("waited %s for %s", limit, what)
	}
}
