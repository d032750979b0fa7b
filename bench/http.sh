#!/usr/bin/env bash
# Requests/s of the generated quick-start `user-service` against a hand-written axum + sqlx
# service doing the same work (bench/src/bin/handwritten_users.rs), side by side, same machine,
# same run. Both use SQLite in WAL mode on local disk; both are release builds.
#
#   bench/http.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-32}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo run -q -p cargo-allframe -- allframe ignite --config examples/quickstart/architecture.toml \
    --out target/bench-quickstart --runtime-path . >/dev/null
(cd target/bench-quickstart && CARGO_TARGET_DIR=../bench-release cargo build -q --release -p user-service)
cargo build -q --release -p allframe-bench --bin handwritten-users

port_generated=18080; port_handwritten=18090
RUST_LOG=warn PORT=$port_generated GRPC_PORT=19090 ALLFRAME_BIND_ADDR=127.0.0.1 ALLFRAME_DATA_DIR="$work/gen" \
    target/bench-release/release/user-service >/dev/null 2>&1 &
PORT=$port_handwritten DATABASE_FILE="$work/hand/handwritten.db" target/release/handwritten-users >/dev/null 2>&1 &

wait_up() { for _ in $(seq 1 100); do curl -sf -o /dev/null -XPOST "localhost:$1/users" -H 'content-type: application/json' -d '{"name":"warmup"}' && return 0; sleep 0.1; done; echo "port $1 never answered" >&2; exit 1; }
wait_up $port_generated; wait_up $port_handwritten

cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"name":"Ada Lovelace"}'
wrk.headers["Content-Type"] = "application/json"
LUA

rps() { wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
id_of() { curl -s -XPOST "localhost:$1/users" -H 'content-type: application/json' -d '{"name":"Grace"}' | sed 's/.*"id":"\([^"]*\)".*/\1/'; }

gen_id=$(id_of $port_generated); hand_id=$(id_of $port_handwritten)
echo "| workload | generated user-service (req/s) | hand-written axum (req/s) | ratio |"
echo "|---|---|---|---|"
for workload in get post; do
    if [ $workload = get ]; then
        g=$(rps "http://127.0.0.1:$port_generated/users/$gen_id"); h=$(rps "http://127.0.0.1:$port_handwritten/users/$hand_id")
    else
        g=$(rps -s "$work/post.lua" "http://127.0.0.1:$port_generated/users"); h=$(rps -s "$work/post.lua" "http://127.0.0.1:$port_handwritten/users")
    fi
    echo "| $workload | $g | $h | $(awk -v g="$g" -v h="$h" 'BEGIN { printf "%.2f", g / h }') |"
done
