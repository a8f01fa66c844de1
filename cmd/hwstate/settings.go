package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/peterbourgon/ff/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hwstate/hwstate/worker"
)

// settings are the whole of CONTRACT.md section 4: every one a flag of `hwstate run` and an
// environment variable HWSTATE_<FLAG>, the flag winning.
type settings struct {
	NATS    natsFlags
	DataDir string
	// The worker's streams, pace and retries, each a flag.
	worker.Config

	GraphCloud, GraphBaseURL string
	TenantID, ClientID       string
	// The secret settings, each with a _FILE form.
	ClientSecret, ClientCert, GraphToken secret
	GraphBatch                           int
	GraphTimeout                         time.Duration
	// Tenants names the tenants file: multi-tenant mode.
	Tenants            string
	HTTPAddr, LogLevel string
}

// secret is a secret setting (CONTRACT.md section 4): its value, or the name of a file
// holding it in the _FILE form (--client-secret-file, HWSTATE_CLIENT_SECRET_FILE), the
// convention of container secrets. Errors name the setting, and the file's path, but never
// the value or the file's content.
type secret struct {
	flag        string
	value, file string
}

func (v *secret) register(fs *flag.FlagSet, name, usage string) {
	v.flag = name
	fs.StringVar(&v.value, name, "", usage)
	fs.StringVar(&v.file, name+"-file", "", "a file holding --"+name+", read at start, its trailing newline dropped (container secrets); instead of --"+name)
}

// resolve reads the value from the _FILE form when that is given.
func (v *secret) resolve() error {
	if v.file == "" {
		return nil
	}
	if v.value != "" {
		return fmt.Errorf("%s and %s are both set; give one", setting(v.flag), setting(v.flag+"-file"))
	}
	data, err := os.ReadFile(v.file)
	if err != nil {
		return fmt.Errorf("%s: cannot read %s: %w", setting(v.flag+"-file"), v.file, pathCause(err))
	}
	value := string(data)
	if !trimSuffix(&value, "\r\n") {
		trimSuffix(&value, "\n")
	}
	if value == "" {
		return fmt.Errorf("%s: %s is empty", setting(v.flag+"-file"), v.file)
	}
	v.value = value
	return nil
}

// source names the form the value was given in, for errors about it.
func (v *secret) source() string {
	if v.file != "" {
		return setting(v.flag+"-file") + " (the content of " + v.file + ")"
	}
	return setting(v.flag)
}

func trimSuffix(s *string, suffix string) bool {
	t, ok := strings.CutSuffix(*s, suffix)
	*s = t
	return ok
}

// pathCause is a file operation's failure without the path, which the caller names (or,
// when the path may be a secret given in the wrong setting, does not).
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// setting names a flag and its environment variable, as errors show them.
func setting(flag string) string { return "--" + flag + " (" + envName(flag) + ")" }

// envName is a flag's environment variable.
func envName(flag string) string {
	return "HWSTATE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// countOrAuto is a count or "auto" (0).
type countOrAuto int

func (f *countOrAuto) String() string {
	if *f == 0 {
		return "auto"
	}
	return strconv.Itoa(int(*f))
}

func (f *countOrAuto) Set(s string) error {
	if s == "auto" {
		*f = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("want a positive number or auto")
	}
	*f = countOrAuto(n)
	return nil
}

// register declares every setting on fs with the contract's default.
func (s *settings) register(fs *flag.FlagSet) {
	s.NATS.register(fs)
	fs.StringVar(&s.DataDir, "data-dir", "./data", "where `hwstate run` without --nats-url stores its embedded JetStream server's data")
	fs.StringVar(&s.Stream, "stream", worker.DefaultStream, "input stream")
	fs.StringVar(&s.Subject, "subject", worker.DefaultSubject, "input subject")
	fs.StringVar(&s.Consumer, "consumer", worker.DefaultConsumer, "durable consumer")
	fs.StringVar(&s.ResultStream, "result-stream", worker.DefaultResultStream, "stream of results")
	fs.StringVar(&s.ResultSubject, "result-subject", worker.DefaultResultSubject, "subject of results")
	fs.StringVar(&s.DLQStream, "dlq-stream", worker.DefaultDLQStream, "stream of dead letters")
	fs.StringVar(&s.DLQSubject, "dlq-subject", worker.DefaultDLQSubject, "subject of dead letters")
	fs.StringVar(&s.GraphCloud, "graph-cloud", "global", cloudUsage())
	fs.StringVar(&s.GraphBaseURL, "graph-base-url", "", "Graph base URL; empty: the cloud's https://<graph host>/beta")
	fs.StringVar(&s.TenantID, "tenant-id", "", "sign-in with client credentials (any cloud): the tenant (directory) id of the app registration; with --client-id and one of --client-secret or --client-cert")
	fs.StringVar(&s.ClientID, "client-id", "", "sign-in: the app registration's application (client) id; it needs the application permission DeviceManagementConfiguration.ReadWrite.All with admin consent")
	s.ClientSecret.register(fs, "client-secret", "sign-in: a client secret of the app registration (prefer --client-secret-file or the environment variable; never logged)")
	s.ClientCert.register(fs, "client-cert", "sign-in: the app registration's certificate with its unencrypted private key: the PEM itself (anything holding -----BEGIN) or the name of a file holding it; instead of --client-secret")
	s.GraphToken.register(fs, "graph-token", "a fixed bearer token instead of client credentials (emulators, tests; never refreshed)")
	fs.Var((*countOrAuto)(&s.GraphBatch), "graph-batch", "creates per Graph $batch request: auto sends creates that are due at the same moment together, up to 20, and a lone create alone; a number from 1 to 20 fixes the most (1 = never $batch; batches fill only with --concurrency at least this); Graph counts every create in a $batch against its limits")
	fs.DurationVar(&s.GraphTimeout, "graph-timeout", 30*time.Second, "one Graph request's time limit")
	fs.Float64Var(&s.Rate, "rate", worker.DefaultRate, "Graph creates per second for this process, at most: a 429 lowers the rate in force, successes raise it back (Intune publishes 100 writes per 20 s per app per tenant; with N replicas the tenant sees up to N times this)")
	fs.IntVar(&s.Burst, "burst", worker.DefaultBurst, "Graph creates allowed at once above the rate")
	fs.IntVar(&s.Concurrency, "concurrency", worker.DefaultConcurrency, "Graph creates in flight at most")
	fs.Var((*countOrAuto)(&s.FetchBatch), "fetch-batch", "messages pulled at a time, or auto: half of rate x ack wait, 1 to 1000")
	fs.DurationVar(&s.AckWait, "ack-wait", worker.DefaultAckWait, "the consumer's ack wait")
	fs.IntVar(&s.MaxAttempts, "max-attempts", worker.DefaultMaxAttempts, "Graph attempts that failed transiently before retries_exhausted")
	fs.DurationVar(&s.MaxRetryAfter, "max-retry-after", worker.DefaultMaxRetryAfter, "longest wait a single Retry-After from Graph can impose")
	fs.DurationVar(&s.ShutdownGrace, "shutdown-grace", worker.DefaultShutdownGrace, "longest shutdown: what has no answer by then is handed back, and its next delivery looks it up in Graph")
	fs.StringVar(&s.LedgerBucket, "ledger-bucket", worker.DefaultLedgerBucket, "the idempotency key-value bucket")
	fs.DurationVar(&s.LedgerTTL, "ledger-ttl", worker.DefaultLedgerTTL, "how long an idempotency record lives")
	fs.IntVar(&s.Replicas, "replicas", 1, "replicas of the streams, consumer and bucket (3 on a three-node cluster)")
	fs.DurationVar(&s.Retention, "retention", worker.DefaultRetention, "how long the result and DLQ streams keep messages")
	fs.StringVar(&s.Tenants, "tenants", "", "a tenants file (YAML): multi-tenant mode, events on <subject>.<tenant id>; read again on SIGHUP and when it changes")
	fs.StringVar(&s.HTTPAddr, "http-addr", ":8080", "/healthz, /readyz, /metrics; empty: none")
	fs.StringVar(&s.LogLevel, "log-level", "info", "debug, info, warn, error")
}

// parse reads flags, then HWSTATE_* variables for flags not given.
func (s *settings) parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, v := range []*secret{&s.ClientSecret, &s.ClientCert, &s.GraphToken} {
		if err := v.resolve(); err != nil {
			return err
		}
	}
	// A claim on an event outlives any request sent under it (worker.Config.ClaimTTL).
	s.ClaimTTL = 2*s.GraphTimeout + 5*time.Second
	return s.validate()
}

// parseFlags is how every command reads its flags: the arguments, then an environment
// variable HWSTATE_<FLAG> for each flag not given, so one environment serves the worker and
// its tools.
func parseFlags(fs *flag.FlagSet, args []string) error {
	return ff.Parse(fs, args, ff.WithEnvVarPrefix("HWSTATE"))
}

// natsFlags are the connection settings of `hwstate run` and of the tools that talk to its
// JetStream servers (publish, dlq).
type natsFlags struct {
	URL, EmbeddedListen, Creds, CA string
}

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.URL, "nats-url", "", "NATS server(s), comma-separated; empty: the embedded JetStream server of `hwstate run`, at --embedded-listen")
	fs.StringVar(&n.EmbeddedListen, "embedded-listen", "127.0.0.1:4222", "where the embedded JetStream server of `hwstate run` without --nats-url listens")
	fs.StringVar(&n.Creds, "nats-creds", "", "a .creds file for the NATS connection (TLS by tls:// URLs)")
	fs.StringVar(&n.CA, "nats-ca", "", "a PEM CA bundle for NATS TLS")
}

// url is where to connect: --nats-url, or the embedded server of `hwstate run`.
func (n *natsFlags) url() string {
	if n.URL == "" {
		return "nats://" + n.EmbeddedListen
	}
	return n.URL
}

// connect opens the connection to url and its JetStream handle; it reconnects for ever,
// because a NATS restart must not stop the worker. Closing the connection is the caller's.
func (n *natsFlags) connect(url string, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nopts := []nats.Option{nats.Name("hwstate"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if n.Creds != "" {
		// Read here first so that a failure is told without the value: given the file's
		// content by mistake, nats.go's error would quote the credentials as a file name.
		if _, err := os.Stat(n.Creds); err != nil {
			return nil, nil, fmt.Errorf("--nats-creds (HWSTATE_NATS_CREDS) is not the name of a file that can be read (%w); "+
				"its value is not shown, in case it holds the credentials themselves", pathCause(err))
		}
		nopts = append(nopts, nats.UserCredentials(n.Creds))
	}
	if n.CA != "" {
		nopts = append(nopts, nats.RootCAs(n.CA))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		// nats.go quotes a URL that does not parse, password and all.
		shown, secrets := redactURLs(url)
		return nil, nil, fmt.Errorf("connect to NATS %s: %w", shown, &redactedError{err: err, secrets: secrets})
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// redactURLs is a comma-separated list of NATS URLs as errors and logs may show it: every
// password (nats://user:password@host) and every token given as a URL's user
// (nats://token@host) replaced by xxxxx. It works on the text, not on parsed URLs, so that a
// URL that does not parse is masked too; secrets are what it masked.
func redactURLs(urls string) (shown string, secrets []string) {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		scheme, rest, ok := strings.Cut(u, "://")
		if !ok {
			scheme, rest = "", u
		} else {
			scheme += "://"
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			// A password holding a comma splits its URL in two: the first half does not
			// parse (its "port" is the password's start), and is not shown.
			if _, err := url.Parse("nats://" + rest); err != nil {
				parts[i] = "(a URL that does not parse)"
				secrets = append(secrets, rest)
			}
			continue
		}
		user, password, hasPassword := strings.Cut(rest[:at], ":")
		if hasPassword {
			parts[i] = scheme + user + ":" + redacted + rest[at:]
			secrets = append(secrets, password)
		} else {
			parts[i] = scheme + redacted + rest[at:]
			secrets = append(secrets, user)
		}
	}
	return strings.Join(parts, ","), secrets
}

// redacted is what stands for a secret in errors and logs.
const redacted = "xxxxx"

// redactedError is err with the given secrets masked in its text, in case it quotes them;
// errors.Is and errors.As still see err.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	// Why a URL does not parse may quote a piece of its password ("invalid port").
	if ue := (*url.Error)(nil); len(e.secrets) > 0 && errors.As(e.err, &ue) {
		return "a URL does not parse (why is not shown: it may quote a piece of a password)"
	}
	text := e.err.Error()
	for _, s := range e.secrets {
		if s == "" {
			continue
		}
		text = strings.ReplaceAll(text, s, redacted)
		// As a URL quoted with %q shows it.
		if quoted := strconv.Quote(s); len(quoted) > 2 {
			text = strings.ReplaceAll(text, quoted[1:len(quoted)-1], redacted)
		}
		if unescaped, err := url.PathUnescape(s); err == nil && unescaped != "" {
			text = strings.ReplaceAll(text, unescaped, redacted)
		}
	}
	return text
}

func (e *redactedError) Unwrap() error { return e.err }

func (s *settings) validate() error {
	var problems []string
	check := func(ok bool, msg string) {
		if !ok {
			problems = append(problems, msg)
		}
	}
	check(s.Rate > 0, "--rate must be above 0")
	check(s.Burst >= 1, "--burst must be at least 1")
	check(s.Concurrency >= 1, "--concurrency must be at least 1")
	check(s.GraphBatch >= 0 && s.GraphBatch <= 20, "--graph-batch must be auto or from 1 to 20")
	check(s.GraphBatch <= s.Concurrency, "--graph-batch must be at most --concurrency: a batch fills only with that many creates in flight")
	check(s.MaxAttempts >= 1, "--max-attempts must be at least 1")
	check(s.AckWait >= time.Second, "--ack-wait must be at least 1s")
	check(s.GraphTimeout > 0, "--graph-timeout must be above 0")
	check(s.MaxRetryAfter > 0 && s.ShutdownGrace > 0, "--max-retry-after and --shutdown-grace must be above 0")
	check(s.Replicas >= 1 && s.Replicas <= 5, "--replicas must be from 1 to 5")
	check(s.LedgerTTL > 0 && s.Retention > 0, "--ledger-ttl and --retention must be above 0")
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// newFlagSet is a command's flags: errors to stderr, and --help printing the synopsis and
// each flag with its environment variable and default to stdout.
func newFlagSet(name string, stdout, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "%s\n\nEvery flag is also an environment variable HWSTATE_<FLAG> (upper case, dashes as underscores); the flag wins.\n\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			env := envName(f.Name)
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(stdout, "  --%s  (%s, default %s)\n      %s\n", f.Name, env, def, f.Usage)
		})
	}
	return fs
}

// newLogger builds the process logger: JSON lines for machines, or a readable console form.
func newLogger(level string, console bool, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	enc := zapcore.NewJSONEncoder(encCfg)
	if console {
		encCfg = zap.NewDevelopmentEncoderConfig()
		encCfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}
