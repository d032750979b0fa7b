#!/usr/bin/env bash
# Outbox relay throughput per bus and commit→delivery p50/p99, each beside its limit (pgbench on
# the same PostgreSQL; the bus alone), in one run: allframe-runtime/benches/relay.rs.
# Needs PostgreSQL, NATS and RabbitMQ on loopback (as on the CI machine) and the tansu broker
# that .ci/run builds into ~/.cache/allframe/tansu; this script starts tansu for the Kafka rows.
#
#   bench/relay.sh [EVENTS] [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-20000}
RATE=${2:-200}
SECS=${3:-5}
TANSU_BIN=${TANSU_BIN:-$HOME/.cache/allframe/tansu/bin/tansu}
[ -x "$TANSU_BIN" ] || { echo "error: tansu missing at $TANSU_BIN (run .ci/run once, or set TANSU_BIN)" >&2; exit 1; }

port=19092
listener="tcp://127.0.0.1:$port"
"$TANSU_BIN" broker --listener-url "$listener" --advertised-listener-url "$listener" \
    --storage-engine memory://tansu/ >/dev/null 2>&1 &
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
"$TANSU_BIN" topic create bench.relay-bench.Ticked --partitions 8 --broker "$listener" >/dev/null

KAFKA_URL="kafka://127.0.0.1:$port" cargo bench -q -p allframe-runtime --all-features --bench relay -- \
    --events "$EVENTS" --rate "$RATE" --secs "$SECS" --buses none,local,nats,rabbitmq,kafka
