#!/bin/sh
# A CA and a server certificate for docker-compose.yml's NATS (names nats, localhost and
# 127.0.0.1), with openssl, into DIR: ca.crt (the clients' trust), server.crt, server.key.
# The CA's key stays in KEYS (default DIR/nsc). A second run changes nothing.
#   usage: nats-tls.sh DIR [KEYS]
set -eu
dir=${1:?usage: nats-tls.sh DIR [KEYS]}
keys=${2:-${NSC_DIR:-$dir/nsc}}
if [ -f "$dir/server.crt" ]; then
	echo "nats-tls: $dir/server.crt exists, nothing to do"
	exit 0
fi
# natsio/nats-box (alpine) has no openssl of its own.
command -v openssl >/dev/null || apk add --no-cache openssl >/dev/null
mkdir -p "$dir" "$keys"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086 # $ec is several arguments
openssl req -x509 $ec -days 3650 -subj "/CN=hwstate compose NATS CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
	-keyout "$keys/ca.key" -out "$dir/ca.crt" 2>/dev/null
# shellcheck disable=SC2086
openssl req $ec -subj "/CN=nats" -keyout "$dir/server.key" -out "$keys/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:nats,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' >"$keys/server.ext"
openssl x509 -req -in "$keys/server.csr" -CA "$dir/ca.crt" -CAkey "$keys/ca.key" -CAcreateserial -CAserial "$keys/ca.srl" \
	-days 825 -extfile "$keys/server.ext" -out "$dir/server.crt" 2>/dev/null
chmod 0444 "$dir/ca.crt" "$dir/server.crt"
chmod 0400 "$dir/server.key"
echo "nats-tls: wrote $dir/ca.crt, server.crt and server.key"
