#!/bin/sh
# Makes the NATS operator, the system account, the HWSTATE account (JetStream enabled) and
# its users worker, producer and operator with the permissions of ./permissions, using nsc
# (https://github.com/nats-io/nsc; the natsio/nats-box image has it). Writes into DIR:
#   resolver.conf                           the server's trust: include it in nats.conf
#   worker.creds producer.creds operator.creds   one per user: mount each where it is used
#   HWSTATE.account                         the account's public key (KEDA's trigger account)
# and keeps the operator's and account's keys in $NSC_DIR (default DIR/nsc): keep them safe,
# out of the cluster. A second run changes nothing: remove DIR to start over.
#   usage: nats-auth.sh DIR [PERMISSIONS]
# docker-compose.yml runs it on first start; for Kubernetes see docs/deploy.md.
set -eu
dir=${1:?usage: nats-auth.sh DIR [PERMISSIONS]}
perms=${2:-$(dirname "$0")/permissions}
# The uid of the hwstate image (distroless nonroot), which reads the .creds files.
owner=${NATS_CREDS_OWNER:-65532}

if [ -f "$dir/resolver.conf" ]; then
	echo "nats-auth: $dir/resolver.conf exists, nothing to do"
	exit 0
fi
keys=${NSC_DIR:-$dir/nsc}
mkdir -p "$dir" "$keys/stores"
export NSC_HOME="$keys" NKEYS_PATH="$keys/keys"
nsc env --store "$keys/stores" >/dev/null

nsc add operator --name hwstate --sys
nsc add account --name HWSTATE
nsc edit account --name HWSTATE --js-mem-storage -1 --js-disk-storage -1 --js-streams -1 --js-consumer -1

# The users in the order of the permissions file, each with its subjects as nsc flags.
for user in $(awk '!/^[[:space:]]*(#|$)/ {print $1}' "$perms" | awk '!seen[$0]++'); do
	pub=$(awk -v u="$user" '$1 == u && $2 == "pub" {print $3}' "$perms" | paste -sd, -)
	sub=$(awk -v u="$user" '$1 == u && $2 == "sub" {print $3}' "$perms" | paste -sd, -)
	nsc add user --account HWSTATE --name "$user" ${pub:+--allow-pub "$pub"} ${sub:+--allow-sub "$sub"}
	nsc generate creds --account HWSTATE --name "$user" --output-file "$dir/$user.creds"
	chown "$owner" "$dir/$user.creds" 2>/dev/null || true
	chmod 0400 "$dir/$user.creds"
done

nsc describe account --name HWSTATE --field sub | tr -d '"' >"$dir/HWSTATE.account"
nsc generate config --mem-resolver --sys-account SYS --config-file "$dir/resolver.conf"
echo "nats-auth: wrote $dir/resolver.conf and the users' .creds files"
