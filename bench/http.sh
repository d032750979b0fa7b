#!/usr/bin/env bash
# Requests/s of the generated quick-start `user-service` against a hand-written axum + sqlx
# service doing the same work per request (bench/src/bin/handwritten_users.rs: the same table
# and unique name, pragmas, transaction and outbox row), side by side on one machine, both
# release builds on SQLite in WAL mode.
#
#   bench/http.sh [SECONDS] [CONNECTIONS] [RUNS]
#
# Every POST carries a name no request used before (a run prefix, the wrk thread and a
# counter), so every answer is a 201 that inserted a row; any non-2xx answer or socket error
# (timeouts after 10 s included) fails the run.
# The two services are measured RUNS times, interleaved (alternating which goes first); the
# ratio reported is the median, with the spread.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-32}
RUNS=${3:-5}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo run -q -p cargo-allframe -- allframe ignite --config examples/quickstart/architecture.toml \
    --out target/bench-quickstart --runtime-path . >/dev/null
(cd target/bench-quickstart && CARGO_TARGET_DIR=../bench-release cargo build -q --release -p user-service)
cargo build -q --release -p allframe-bench --bin handwritten-users
handwritten="${CARGO_TARGET_DIR:-target}/release/handwritten-users"

port_generated=18080; port_handwritten=18090
RUST_LOG=warn PORT=$port_generated GRPC_PORT=19090 ALLFRAME_BIND_ADDR=127.0.0.1 ALLFRAME_DATA_DIR="$work/gen" \
    target/bench-release/release/user-service >/dev/null 2>&1 &
pid_generated=$!
PORT=$port_handwritten DATABASE_FILE="$work/hand/handwritten.db" "$handwritten" >/dev/null 2>&1 &
pid_handwritten=$!

wait_up() { # until the service answers 404 for an unknown user
    for _ in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "localhost:$1/users/none")" = 404 ] && return 0
        sleep 0.1
    done
    echo "port $1 never answered" >&2; exit 1
}
wait_up $port_generated; wait_up $port_handwritten

cat > "$work/post.lua" <<'LUA'
-- A name no other request of any run used: run prefix, wrk thread, counter.
local threads, counter, prefix = {}, 0, "run"
function setup(thread)
    table.insert(threads, thread)
    thread:set("thread_no", #threads)
end
function init(args)
    prefix = args[1] .. "-" .. thread_no
end
function request()
    counter = counter + 1
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
        '{"name":"' .. prefix .. "-" .. counter .. '"}')
end
LUA

# Requests/s and requests of one wrk run; fails on any non-2xx answer or socket error.
rps() {
    local out
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --timeout 10s "$@")
    if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx answers: $(grep 'Non-2xx' <<<"$out") for $*" >&2; exit 1; fi
    if grep -q 'Socket errors' <<<"$out"; then echo "$(grep 'Socket errors' <<<"$out") for $*" >&2; exit 1; fi
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '/requests in/ {print $1}' <<<"$out")"
}
# CPU ticks (user + system) and bytes written so far by a process.
usage() { echo "$(awk '{print $14 + $15}' "/proc/$1/stat") $(awk '/^wchar/ {print $2}' "/proc/$1/io")"; }
id_of() { curl -sf -XPOST "localhost:$1/users" -H 'content-type: application/json' -d "{\"name\":\"Grace $RANDOM$RANDOM\"}" | sed 's/.*"id":"\([^"]*\)".*/\1/'; }

gen_id=$(id_of $port_generated); hand_id=$(id_of $port_handwritten)
url() { # port, workload
    if [ "$2" = get ]; then
        if [ "$1" = $port_generated ]; then echo "http://127.0.0.1:$1/users/$gen_id"; else echo "http://127.0.0.1:$1/users/$hand_id"; fi
    else echo "http://127.0.0.1:$1/users"; fi
}
# Requests/s, CPU µs per request and KB written per request of one run against a service.
measure() { # port, workload, run
    local pid=$pid_handwritten before after result
    [ "$1" = $port_generated ] && pid=$pid_generated
    before=$(usage $pid)
    if [ "$2" = get ]; then result=$(rps "$(url "$1" get)"); else result=$(rps -s "$work/post.lua" "$(url "$1" post)" -- "r$3p$1"); fi
    after=$(usage $pid)
    awk -v r="$result" -v b="$before" -v a="$after" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(r, R, " "); split(b, B, " "); split(a, A, " ")
        printf "%s %.0f %.1f", R[1], (A[1] - B[1]) * 1e6 / hz / R[2], (A[2] - B[2]) / 1024 / R[2] }'
}

# Per request: CPU (user + system, µs) and bytes written (KB) of each process over its run —
# steadier than req/s when a shared disk's fsync latency swings.
echo "| workload | run | generated user-service (req/s) | hand-written axum (req/s) | ratio | CPU µs/request (generated / hand-written) | KB written/request (generated / hand-written) |"
echo "|---|---|---|---|---|---|---|"
for workload in get post; do
    ratios=()
    for run in $(seq 1 "$RUNS"); do
        if [ $((run % 2)) = 1 ]; then
            read -r g gc gw <<<"$(measure $port_generated $workload "$run")"; read -r h hc hw <<<"$(measure $port_handwritten $workload "$run")"
        else
            read -r h hc hw <<<"$(measure $port_handwritten $workload "$run")"; read -r g gc gw <<<"$(measure $port_generated $workload "$run")"
        fi
        ratio=$(awk -v g="$g" -v h="$h" 'BEGIN { printf "%.3f", g / h }')
        ratios+=("$ratio")
        echo "| $workload | $run | $g | $h | $ratio | $gc / $hc | $gw / $hw |"
    done
    sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
    median=$(awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }' <<<"$sorted")
    echo "| $workload | median of $RUNS (min $(head -1 <<<"$sorted"), max $(tail -1 <<<"$sorted")) | | | **$median** | | |"
done
