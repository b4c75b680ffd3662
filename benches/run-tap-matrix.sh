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
(cd "$ROOT" && cargo build --release --quiet -p envhub-embedded -p envhub-tests \
    --bin envhub-tap --bin envhub-load) >&2
cargo build --release --quiet --manifest-path "$ROOT/benches/smoltcp-ack/Cargo.toml" >&2

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
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

mode_of() { case $1 in tap) echo sensor ;; tap-echo) echo echo ;; ack) echo ack ;; esac; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# Idle percentage of all CPUs over half a second.
idle_pct() {
    local u n s i w x y z t1 i1
    read -r _ u n s i w x y z _ </proc/stat
    t1=$((u + n + s + i + w + x + y + z)); i1=$((i + w))
    sleep 0.5
    read -r _ u n s i w x y z _ </proc/stat
    echo $(( 100 * (i + w - i1) / (u + n + s + i + w + x + y + z - t1 + 1) ))
}
# Other work on the two cores skews everything: wait (at most QUIET_WAIT
# seconds) until they are idle, and count the runs started without that.
QUIET_WAIT=${QUIET_WAIT:-60}
BUSY_RUNS=0
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT))
    while [ "$(idle_pct)" -lt 90 ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "  warning: the machine is busy; measuring anyway" >&2
            BUSY_RUNS=$((BUSY_RUNS + 1))
            return 0
        fi
    done
}

echo "load average before the run: $(awk '{ print $1 }' /proc/loadavg)" >&2
declare -A RPS P50 P99 ERR CPU
for server in $SERVERS; do
    start_server "$server"
    for point in $POINTS; do
        c=${point%x*}
        d=${point#*x}
        echo "  $server $point ..." >&2
        runs=
        for r in $(seq "$REPEAT"); do
            wait_quiet
            t0=$(cpu_ticks)
            one=$(taskset -c "$LOAD_CPU" "$BIN/envhub-load" --netns "$NS" --allow-netns-addr \
                --addr "$SERVER_IP:$PORT" --mode "$(mode_of "$server")" -c "$c" -d "$d" \
                --duration "$DURATION" --warmup "$WARMUP" 2>"$LOG/load-$server-$point-$r.err" \
                | grep '^SUMMARY' || true)
            t1=$(cpu_ticks)
            [ -n "$one" ] && runs+="$(field rps "$one") $((t1 - t0)) $one"$'\n'
        done
        # The run of median req/s, with the server CPU ticks it took.
        n=$(grep -c . <<<"$runs" || true)
        pick=$(sort -n <<<"$runs" | grep . | sed -n "$(( (n + 1) / 2 ))p" || true)
        line=${pick#* * }
        ticks=$(cut -d" " -f2 <<<"$pick")
        if [ -z "$line" ]; then
            RPS[$server,$point]=failed; P50[$server,$point]=-; P99[$server,$point]=-
            ERR[$server,$point]=-; CPU[$server,$point]=-
            continue
        fi
        RPS[$server,$point]=$(field rps "$line" | cut -d. -f1)
        P50[$server,$point]=$(field p50_us "$line")
        P99[$server,$point]=$(field p99_us "$line")
        # Errors of every run, and runs that printed no summary at all.
        ERR[$server,$point]=$(awk -v want="$REPEAT" '/errors=/ { sub(/.* errors=/, ""); e += $1; n++ }
            END { printf "%d", e; if (n < want) printf " (%d runs failed)", want - n }' <<<"$runs")
        CPU[$server,$point]=$(awk -v t="$ticks" -v n="$(field total "$line")" \
            'BEGIN { if (n > 0) printf "%.2f", t * 10000 / n; else print "-" }')
        # Let closing connections leave the slots before the next point.
        sleep 0.5
    done
    stop_server
done

echo
echo "### TAP: envhub-tap over smoltcp ($DURATION s per point after ${WARMUP} s warm-up; server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; namespace-local)"
echo
echo "| C x D | server | req/s | p50 µs | p99 µs | server CPU µs/req | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
for point in $POINTS; do
    for server in $SERVERS; do
        echo "| $point | $server | ${RPS[$server,$point]} | ${P50[$server,$point]} | ${P99[$server,$point]} | ${CPU[$server,$point]} | ${ERR[$server,$point]} |"
    done
done
echo
if [ "$BUSY_RUNS" -gt 0 ]; then
    echo "**$BUSY_RUNS runs started while the CPUs were less than 90 % idle: their figures are suspect.**"
    echo
fi
echo "(logs: $LOG)"
