package main

import (
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsFlags are the connection settings of the tools that talk to the JetStream servers of a
// running hwstate (publish, dlq). They have the names and HWSTATE_* variables of `hwstate
// run`, so one environment serves the worker and its tools.
type natsFlags struct {
	url, embeddedListen, creds, ca string
}

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.url, "nats-url", "", "NATS server(s), comma-separated; empty: the embedded server of `hwstate run`, at --embedded-listen")
	fs.StringVar(&n.embeddedListen, "embedded-listen", "127.0.0.1:4222", "where `hwstate run` without --nats-url listens")
	fs.StringVar(&n.creds, "nats-creds", "", "a .creds file for the NATS connection (TLS by tls:// URLs)")
	fs.StringVar(&n.ca, "nats-ca", "", "a PEM CA bundle for NATS TLS")
}

// connect opens the connection and its JetStream handle; closing the connection is the
// caller's.
func (n *natsFlags) connect(opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	url := n.url
	if url == "" {
		url = "nats://" + n.embeddedListen
	}
	nc, err := connect(url, n.creds, n.ca)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}
