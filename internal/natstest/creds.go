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
func WithCreds() Option { return WithUsers(nil) }

// WithUsers is WithCreds with more users in the same account, each allowed only what its
// permissions say (the user of Server.CredsFile stays unrestricted); their .creds files are
// in Server.UserCreds by name.
func WithUsers(users map[string]jwt.Permissions) Option {
	return func(t testing.TB, s *Server) {
		t.Helper()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("credentials: %v", err)
			}
		}
		// keyPair makes a key of the kind create makes, and its public key.
		keyPair := func(create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, string) {
			t.Helper()
			kp, err := create()
			must(err)
			pub, err := kp.PublicKey()
			must(err)
			return kp, pub
		}
		opKey, opPub := keyPair(nkeys.CreateOperator)
		resolver := &server.MemAccResolver{}
		account := func(jetStream bool) (nkeys.KeyPair, string) {
			t.Helper()
			kp, pub := keyPair(nkeys.CreateAccount)
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

		dir := t.TempDir()
		user := func(name string, perms jwt.Permissions) string {
			t.Helper()
			userKey, userPub := keyPair(nkeys.CreateUser)
			claims := jwt.NewUserClaims(userPub)
			claims.Name, claims.Permissions = name, perms
			userJWT, err := claims.Encode(accKey)
			must(err)
			seed, err := userKey.Seed()
			must(err)
			creds, err := jwt.FormatUserConfig(userJWT, seed)
			must(err)
			path := filepath.Join(dir, name+".creds")
			must(os.WriteFile(path, creds, 0o600))
			return path
		}
		s.CredsFile = user("user", jwt.Permissions{})
		s.UserCreds = map[string]string{}
		for name, perms := range users {
			s.UserCreds[name] = user(name, perms)
		}

		s.opts.TrustedOperators = []*jwt.OperatorClaims{op}
		s.opts.AccountResolver = resolver
		s.opts.SystemAccount = sysPub
	}
}
