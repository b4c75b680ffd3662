#!/usr/bin/env bash
# The TAP benchmark: envhub-tap (smoltcp) inside a throw-away network
# namespace, measured by envhub-load entering that namespace (--netns).
# Compared with envhub-tap in echo mode and with benches/smoltcp-ack (smoltcp
# answering each line with {"ok":true} without parsing): the stack's floor.
#
#   sudo benches/run-tap-matrix.sh
#
# Environment:
#   DURATION=5 WARMUP=1               seconds per point (measured / warm-up)
#   REPEAT=3                          runs per point; the median (req/s) is shown
#   POINTS="1x1 16x1 16x16 60x4"      connections x depth (at most 64 conns)
#   SERVERS="tap tap-echo ack"        tap: envhub-tap sensor mode;
#                                     tap-echo: envhub-tap --mode echo;
#                                     ack: benches/smoltcp-ack
#   SERVER_CPU=0 LOAD_CPU=1, CARGO_TARGET_DIR as usual.
#
# Network: namespace envhub-bench-<pid> with only lo and tap0; the kernel
# side of tap0 is 192.168.69.100/24, the server 192.168.69.1/24. Nothing
# leaves the namespace; it is deleted on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET
BIN=$TARGET/release
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
POINTS=${POINTS:-"1x1 16x1 16x16 60x4"}
SERVERS=${SERVERS:-"tap tap-echo ack"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
NS=envhub-bench-$$
SERVER_IP=192.168.69.1
KERNEL_ADDR=192.168.69.100/24
PORT=8080
LOG=$(mktemp -d /tmp/envhub-tap-bench.XXXXXX)

if [ "$(id -u)" != 0 ]; then
    echo "run-tap-matrix: skipped: needs root (network namespace and TAP device)" >&2
    exit 0
fi

echo "building (release) ..." >&2
(cd "$ROOT" && cargo build --release --quiet -p envhub-tap -p envhub-load \
    --bin envhub-tap --bin envhub-load) >&2
cargo build --release --quiet --manifest-path "$ROOT/benches/smoltcp-ack/Cargo.toml" >&2

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
cleanup() {
    stop_server
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" addr add "$KERNEL_ADDR" dev tap0
ip -n "$NS" link set tap0 up

start_server() {
    local name=$1 out=$LOG/$1.out
    case $name in
    tap) ip netns exec "$NS" taskset -c "$SERVER_CPU" "$BIN/envhub-tap" --tap tap0 \
             --ip "$SERVER_IP/24" --port "$PORT" --mode sensor >"$out" 2>"$LOG/$name.err" & ;;
    tap-echo) ip netns exec "$NS" taskset -c "$SERVER_CPU" "$BIN/envhub-tap" --tap tap0 \
                  --ip "$SERVER_IP/24" --port "$PORT" --mode echo >"$out" 2>"$LOG/$name.err" & ;;
    ack) ip netns exec "$NS" taskset -c "$SERVER_CPU" "$BIN/envhub-smoltcp-ack" --tap tap0 \
             --ip "$SERVER_IP/24" --port "$PORT" >"$out" 2>"$LOG/$name.err" & ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    # `ip netns exec` execs the program: this is the server's pid.
    SERVER_PID=$!
    for _ in $(seq 100); do
        if grep -q "^listening on" "$out" 2>/dev/null \
            && ip -n "$NS" -o link show tap0 | grep -q LOWER_UP; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "$name did not start; see $LOG" >&2
    exit 1
}

# envhub-load enters the namespace; the mode says what replies to expect.
load_args() {
    printf '%s\n' --netns "$NS" --allow-netns-addr --addr "$SERVER_IP:$PORT" --mode
    case $1 in tap) echo sensor ;; tap-echo) echo echo ;; ack) echo ack ;; esac
}
# Let closing connections leave the slots before the next point.
settle() { sleep 0.5; }
AFTER_POINT=settle

echo "load average before the run: $(awk '{ print $1 }' /proc/loadavg)" >&2
run_points

print_points "TAP: envhub-tap over smoltcp ($DURATION s per point after ${WARMUP} s warm-up; server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; namespace-local)"
print_footer
