package graph

import "context"

// TokenSource gives the bearer token for a request. force=true asks for a fresh one,
// bypassing any cache: Create asks for it after a 401, when the cached token may have
// been revoked or expired early. Implementations must be safe for concurrent use and
// must never put a token into an error.
type TokenSource interface {
	Token(ctx context.Context, force bool) (string, error)
}

// StaticToken is a fixed bearer token (HWSTATE_GRAPH_TOKEN), for emulators and tests.
// It cannot be refreshed: force returns the same token.
type StaticToken string

// Token returns t.
func (t StaticToken) Token(context.Context, bool) (string, error) {
	return string(t), nil
}
