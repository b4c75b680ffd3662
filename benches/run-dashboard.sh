#!/usr/bin/env bash
# What open dashboard event streams cost the sensors: envhub's req/s at
# C x D (default 16x16) with no stream open, then with STREAMS (default 64)
# `curl -N /api/events` streams reading every reading, alternating, REPEAT
# runs each; prints the median of each and the ratio.
#
#   benches/run-dashboard.sh
#
# Environment: DURATION=5 WARMUP=1 REPEAT=3 STREAMS=64 C=16 D=16
# PORT=18280 SERVER_CPU=0 LOAD_CPU=1 (the streams' curl processes run on
# LOAD_CPU too, as a browser would run elsewhere). Loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
STREAMS=${STREAMS:-64}
C=${C:-16}
D=${D:-16}
PORT=${PORT:-18280}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
LOG=$(mktemp -d /tmp/envhub-dashboard-bench.XXXXXX)

echo "building (release) ..." >&2
(cd "$ROOT" && cargo build --release --quiet -p envhub-host -p envhub-load \
    --bin envhub --bin envhub-load) >&2

HTTP=127.0.0.1:$((PORT + 1))
taskset -c "$SERVER_CPU" "$BIN/envhub" --bind "127.0.0.1:$PORT" --http "$HTTP" --db "$LOG/history.db" \
    --max-clients 8192 --http-max-clients "$STREAMS" >"$LOG/envhub.out" 2>"$LOG/envhub.err" &
SERVER_PID=$!
CURLS=()
cleanup() {
    for p in "${CURLS[@]}"; do kill "$p" 2>/dev/null || true; done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^listening on' "$LOG/envhub.out" && break; sleep 0.1; done
grep -q '^listening on' "$LOG/envhub.out" || { cat "$LOG/envhub.err" >&2; exit 1; }

one_run() {
    taskset -c "$LOAD_CPU" "$BIN/envhub-load" --addr "127.0.0.1:$PORT" -c "$C" -d "$D" \
        --duration "$DURATION" --warmup "$WARMUP" 2>/dev/null | grep '^SUMMARY' |
        sed -n 's/.* rps=\([0-9]*\).*/\1/p'
}
open_streams() {
    for i in $(seq "$STREAMS"); do
        taskset -c "$LOAD_CPU" curl -sN "http://$HTTP/api/events" >"$LOG/stream-$i" 2>/dev/null &
        CURLS+=($!)
    done
    sleep 1
}
close_streams() {
    for p in "${CURLS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${CURLS[@]}"; do wait "$p" 2>/dev/null || true; done
    CURLS=()
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

without=() with=()
for _ in $(seq "$REPEAT"); do
    without+=("$(one_run)")
    open_streams
    with+=("$(one_run)")
    bytes=$(cat "$LOG"/stream-* | wc -c)
    close_streams
done
m0=$(printf '%s\n' "${without[@]}" | median)
m1=$(printf '%s\n' "${with[@]}" | median)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "${C}x${D} without streams: ${without[*]} req/s (median $m0)"
echo "${C}x${D} with $STREAMS streams: ${with[*]} req/s (median $m1); last run's streams got $bytes bytes"
awk -v a="$m0" -v b="$m1" 'BEGIN { printf "with / without: %.3f\n", b / a }'
