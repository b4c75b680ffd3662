#!/usr/bin/env bash
# The MQTT bridge benchmark (issue 9), with Mosquitto on the same machine:
#
#   benches/mqtt.sh            # build (release), run, print markdown
#
# 1. Sensor-side req/s of envhub without and with --mqtt (discovery on, no
#    subscriber), at POINTS (default 16x16), server on SERVER_CPU, load on
#    LOAD_CPU, the broker unpinned. Every reply is verified by envhub-load.
# 2. The drain rate of a backlog of DRAIN_ROWS (default 100000) readings
#    from the history database, through the broker to one subscriber
#    (host/examples/mqtt_drain.rs).
#
# Environment as for run-matrix.sh: DURATION WARMUP REPEAT POINTS PORT
# SERVER_CPU LOAD_CPU QUIET_WAIT CARGO_TARGET_DIR; SERVERS (default
# "envhub envhub-mqtt"; reverse it to check the order does not matter);
# DRAIN_ROWS (0 skips the drain).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET
BIN=$TARGET/release
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
POINTS=${POINTS:-"16x16"}
SERVERS=${SERVERS:-"envhub envhub-mqtt"}
PORT=${PORT:-18280}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
DRAIN_ROWS=${DRAIN_ROWS:-100000}
QUIET_WAIT=${QUIET_WAIT:-20}
LOG=$(mktemp -d /tmp/envhub-mqtt-bench.XXXXXX)
chmod 777 "$LOG"   # mosquitto started as root runs as its own user

MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$MOSQUITTO" ] || { echo "mosquitto is not installed (apt-get install mosquitto)" >&2; exit 1; }

echo "building (release) ..." >&2
(cd "$ROOT" && cargo build --release --quiet -p envhub-host -p envhub-load \
    --bin envhub --bin envhub-load --example mqtt_drain) >&2

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

BROKER_PORT=$((PORT + 100))
BROKER_PID=
start_broker() {
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' \
        "$BROKER_PORT" >"$LOG/mosquitto.conf"
    "$MOSQUITTO" -c "$LOG/mosquitto.conf" >"$LOG/mosquitto.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "mosquitto did not start; see $LOG" >&2
    exit 1
}
LOAD_PID=
cleanup() {
    if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null || true; fi
    stop_server
    if [ -n "$BROKER_PID" ]; then kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both servers without history (when the build has it), so the difference
# is the bridge alone; the drain below measures the database path.
NODB=()
"$BIN/envhub" --help | grep -qE '^ +--no-db' && NODB=(--no-db)
start_server() {
    local name=$1 out extra=("${NODB[@]}" --http off)
    PORT=$((PORT + 1))
    ADDR=127.0.0.1:$PORT
    out=$LOG/$name-$PORT.out
    [ "$name" = envhub-mqtt ] && extra+=(--mqtt "mqtt://127.0.0.1:$BROKER_PORT" --gateway-id bench)
    taskset -c "$SERVER_CPU" "$BIN/envhub" --bind "$ADDR" --max-clients 8192 "${extra[@]}" \
        >"$out" 2>"$LOG/$name-$PORT.err" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "^listening on" "$out" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "$name did not start; see $LOG" >&2
    exit 1
}
load_args() { printf '%s\n' --addr "$ADDR"; }

echo "load average before the run: $(awk '{ print $1 }' /proc/loadavg)" >&2
start_broker
run_points
print_points "Sensor side with and without --mqtt ($DURATION s per point after ${WARMUP} s warm-up, median of $REPEAT; server on CPU $SERVER_CPU, load on CPU $LOAD_CPU, mosquitto unpinned; loopback)"

if [ "$DRAIN_ROWS" -gt 0 ]; then
    echo
    echo "### Drain of a $DRAIN_ROWS-reading backlog (history database -> mosquitto -> one subscriber)"
    echo
    wait_quiet
    line=$("$BIN/examples/mqtt_drain" "$BROKER_PORT" "$DRAIN_ROWS" "$LOG")
    echo '```'
    echo "$line"
    echo '```'
fi
print_footer
