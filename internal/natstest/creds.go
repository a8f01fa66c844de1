package natstest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// WithCreds runs the server in operator (decentralised JWT) mode, trusting an operator made
// for this test, with one JetStream-enabled account; a user's .creds file for it is in
// Server.CredsFile. Connections without those credentials are refused.
func WithCreds() Option {
	return func(t testing.TB, s *Server) {
		t.Helper()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("credentials: %v", err)
			}
		}
		opKey, err := nkeys.CreateOperator()
		must(err)
		opPub, err := opKey.PublicKey()
		must(err)
		resolver := &server.MemAccResolver{}
		account := func(jetStream bool) (nkeys.KeyPair, string) {
			t.Helper()
			kp, err := nkeys.CreateAccount()
			must(err)
			pub, err := kp.PublicKey()
			must(err)
			claims := jwt.NewAccountClaims(pub)
			if jetStream {
				claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
			}
			token, err := claims.Encode(opKey)
			must(err)
			must(resolver.Store(pub, token))
			return kp, pub
		}
		_, sysPub := account(false)
		accKey, _ := account(true)

		op := jwt.NewOperatorClaims(opPub)
		op.SystemAccount = sysPub
		opJWT, err := op.Encode(opKey)
		must(err)
		op, err = jwt.DecodeOperatorClaims(opJWT)
		must(err)

		userKey, err := nkeys.CreateUser()
		must(err)
		userPub, err := userKey.PublicKey()
		must(err)
		userJWT, err := jwt.NewUserClaims(userPub).Encode(accKey)
		must(err)
		seed, err := userKey.Seed()
		must(err)
		creds, err := jwt.FormatUserConfig(userJWT, seed)
		must(err)
		s.CredsFile = filepath.Join(t.TempDir(), "user.creds")
		must(os.WriteFile(s.CredsFile, creds, 0o600))

		s.opts.TrustedOperators = []*jwt.OperatorClaims{op}
		s.opts.AccountResolver = resolver
		s.opts.SystemAccount = sysPub
	}
}
