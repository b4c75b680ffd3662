#!/usr/bin/env bash
# The host benchmark: envhub against a tokio task-per-connection server of the
# same protocol, both on one core, over loopback only.
#
#   benches/run-matrix.sh            # build (release), run, print markdown
#
# Environment:
#   DURATION=5        seconds measured per point (plus WARMUP, at most 120)
#   WARMUP=1          seconds of load before each point is measured
#   REPEAT=3          runs per point; the table shows the run of median req/s
#   POINTS="1x1 16x1 16x16 256x4"   connections x pipeline depth
#   HOLD=2000         idle connections held for the memory figure
#   BIG_HOLD=100000   idle connections envhub alone holds at once, from
#                     127.0.0.2 on (capped by the hard descriptor limit:
#                     the server needs one descriptor per connection)
#   SERVERS="envhub envhub-db tokio tokio-ct" which servers (envhub: --no-db;
#                     envhub-db: history on, a fresh --db in the log directory;
#                     tokio: multi-thread runtime with 1 worker; tokio-ct:
#                     current-thread runtime)
#   PORT=18080        first loopback port used (one per server start)
#   SERVER_CPU=0 LOAD_CPU=1
#   CARGO_TARGET_DIR  as usual (default: target/ of the repository)
#
# Each server is pinned to SERVER_CPU with taskset, the load generator to
# LOAD_CPU. Every reply is verified byte for byte by envhub-load; the
# "errors" column must be 0. Server CPU time per request comes from
# /proc/PID/stat (utime+stime, 10 ms ticks), memory from /proc/PID/status.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TARGET_DIR=$TARGET
BIN=$TARGET/release
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
POINTS=${POINTS:-"1x1 16x1 16x16 256x4"}
HOLD=${HOLD:-2000}
BIG_HOLD=${BIG_HOLD:-100000}
SERVERS=${SERVERS:-"envhub envhub-db tokio tokio-ct"}
PORT=${PORT:-18080}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
LOG=$(mktemp -d /tmp/envhub-bench.XXXXXX)

# ---- build --------------------------------------------------------------
echo "building (release) ..." >&2
(cd "$ROOT" && cargo build --release --quiet -p envhub-host -p envhub-load \
    --bin envhub --bin envhub-load) >&2
cargo build --release --quiet --manifest-path "$ROOT/benches/tokio-server/Cargo.toml" >&2

# Enough descriptors for BIG_HOLD connections (each end is a process of
# its own), plus slack; as many as the hard limit allows.
need=$((BIG_HOLD + 256))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    ulimit -Hn "$need" 2>/dev/null || true
fi
ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
    BIG_HOLD=$(( $(ulimit -n) - 64 ))
    echo "the descriptor limit is $(ulimit -n): holding $BIG_HOLD connections, not more" >&2
fi

# ---- server control -----------------------------------------------------
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
LOAD_PID=
cleanup() {
    if [ -n "$LOAD_PID" ]; then kill "$LOAD_PID" 2>/dev/null || true; fi
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME: starts it pinned on a fresh port, waits for its
# "listening on" line; sets SERVER_PID and ADDR.
start_server() {
    local name=$1 out
    PORT=$((PORT + 1))
    ADDR=127.0.0.1:$PORT
    out=$LOG/$name-$PORT.out
    case $name in
    envhub) taskset -c "$SERVER_CPU" "$BIN/envhub" --bind "$ADDR" --max-clients 200000 \
                --max-per-source 200000 --no-db --http off \
                >"$out" 2>"$LOG/$name-$PORT.err" & ;;
    # History on: one database for all points of the run (a fresh one per
    # run of the script), so the table grows as it would in use.
    envhub-db) taskset -c "$SERVER_CPU" "$BIN/envhub" --bind "$ADDR" --max-clients 8192 \
                   --db "$LOG/history.db" --http off >"$out" 2>"$LOG/$name-$PORT.err" & ;;
    tokio) taskset -c "$SERVER_CPU" "$BIN/envhub-tokio-server" --bind "$ADDR" --max-clients 8192 \
               --flavor multi --workers 1 >"$out" 2>"$LOG/$name-$PORT.err" & ;;
    tokio-ct) taskset -c "$SERVER_CPU" "$BIN/envhub-tokio-server" --bind "$ADDR" --max-clients 8192 \
                  --flavor current >"$out" 2>"$LOG/$name-$PORT.err" & ;;
    *) echo "unknown server $name" >&2; exit 2 ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "^listening on" "$out" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "$name did not start; see $LOG" >&2
    exit 1
}

# envhub-load reaches every server here at ADDR (set by start_server).
load_args() { printf '%s\n' --addr "$ADDR"; }

# A quiet machine is worth checking: other work on the two cores skews all.
busy=$(awk '{ print $1 }' /proc/loadavg)
echo "load average before the run: $busy" >&2

run_points

declare -A BASE HELD PER THR
for server in $SERVERS; do
    start_server "$server"
    sleep 0.3
    BASE[$server]=$(rss_kib)
    echo "  $server: holding $HOLD idle connections ..." >&2
    holdout=$LOG/hold-$server.out
    taskset -c "$LOAD_CPU" "$BIN/envhub-load" --addr "$ADDR" --hold "$HOLD" --duration 60 \
        >"$holdout" 2>"$LOG/hold-$server.err" &
    LOAD_PID=$!
    ok=
    for _ in $(seq 600); do
        if grep -q "^held" "$holdout"; then ok=1; break; fi
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$ok" ]; then
        sleep 0.5
        HELD[$server]=$(rss_kib)
        THR[$server]=$(threads)
        PER[$server]=$(awk -v a="${BASE[$server]}" -v b="${HELD[$server]}" -v n="$HOLD" \
            'BEGIN { printf "%.1f", (b - a) / n }')
    else
        HELD[$server]=failed; THR[$server]=-; PER[$server]=-
        echo "  $server: hold failed: $(cat "$LOG/hold-$server.err")" >&2
    fi
    kill "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=
    stop_server
done

# envhub alone: BIG_HOLD idle connections at once.
BIG_RSS=-; BIG_BASE=-
if [[ " $SERVERS " == *" envhub "* ]]; then
    start_server envhub
    sleep 0.3
    BIG_BASE=$(rss_kib)
    echo "  envhub: holding $BIG_HOLD idle connections ..." >&2
    holdout=$LOG/bighold.out
    taskset -c "$LOAD_CPU" "$BIN/envhub-load" --addr "$ADDR" --hold "$BIG_HOLD" --sources 8 \
        --duration 60 >"$holdout" 2>"$LOG/bighold.err" &
    LOAD_PID=$!
    for _ in $(seq 1800); do
        if grep -q "^held" "$holdout"; then sleep 0.5; BIG_RSS=$(rss_kib); break; fi
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ "$BIG_RSS" = - ] && echo "  envhub: big hold failed: $(cat "$LOG/bighold.err")" >&2
    kill "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=
    stop_server
fi

# ---- history: rows and bytes per reading ---------------------------------
# After a clean stop the WAL is checkpointed into the database file; a
# restart logs how many rows it holds.
DB_ROWS=-; DB_BYTES=-; DB_PER=-
if [ -f "$LOG/history.db" ]; then
    DB_BYTES=$(stat -c %s "$LOG/history.db")
    start_server envhub-db
    DB_ROWS=$(sed -n 's/.*history: .* (\([0-9]*\) rows;.*/\1/p' "$LOG"/envhub-db-"$PORT".err | head -1)
    stop_server
    DB_PER=$(awk -v b="$DB_BYTES" -v n="$DB_ROWS" 'BEGIN { if (n > 0) printf "%.1f", b / n; else print "-" }')
fi

# ---- report -------------------------------------------------------------
print_points "Throughput and latency ($DURATION s per point after ${WARMUP} s warm-up; server on CPU $SERVER_CPU, load on CPU $LOAD_CPU; loopback)"
echo
echo "### Memory per idle connection ($HOLD connections, each served one ping)"
echo
echo "| server | RSS before KiB | RSS with $HOLD KiB | threads | KiB per connection |"
echo "|---|---:|---:|---:|---:|"
for server in $SERVERS; do
    echo "| $server | ${BASE[$server]} | ${HELD[$server]} | ${THR[$server]} | ${PER[$server]} |"
done
echo
echo "### envhub holding $BIG_HOLD idle connections at once"
echo
echo "RSS before: ${BIG_BASE} KiB; with them: ${BIG_RSS} KiB"
if [ "$DB_ROWS" != - ]; then
    echo
    echo "### History (envhub-db)"
    echo
    echo "| rows written in the run | database file after a clean stop | bytes per reading |"
    echo "|---:|---:|---:|"
    echo "| $DB_ROWS | $DB_BYTES B | $DB_PER |"
    echo
    echo "| C x D | envhub-db ÷ envhub (req/s) |"
    echo "|---|---:|"
    for point in $POINTS; do
        echo "| $point | $(awk -v a="${RPS[envhub-db,$point]:-0}" -v b="${RPS[envhub,$point]:-0}" \
            'BEGIN { if (b > 0 && a + 0 == a) printf "%.2f", a / b; else print "-" }') |"
    done
fi
print_footer
