# Shared by run-matrix.sh and run-tap-matrix.sh (sourced, not run).
#
# The sourcing script sets BIN, LOG, SERVERS, POINTS, REPEAT, DURATION,
# WARMUP, LOAD_CPU and defines:
#   start_server NAME   starts NAME, sets SERVER_PID (and what load_args needs)
#   load_args NAME      prints the envhub-load arguments that reach NAME
#                       (address, namespace, mode), one per line

SERVER_PID=
# stop_server: SIGTERM, then SIGKILL after 5 s.
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# CPU ticks (utime+stime, dead threads included) of the server.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$SERVER_PID/status"; }
# field KEY SUMMARY-LINE: the value of KEY=... in envhub-load's summary.
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

# run_points: every server of SERVERS at every point of POINTS, REPEAT runs
# each; fills RPS P50 P99 ERR CPU (keyed "server,point") with the run of
# median req/s. AFTER_POINT (optional) is run between points.
declare -A RPS P50 P99 ERR CPU
run_points() {
    local server point c d r runs one t0 t1 n pick line ticks
    for server in $SERVERS; do
        start_server "$server"
        mapfile -t args < <(load_args "$server")
        for point in $POINTS; do
            c=${point%x*}
            d=${point#*x}
            echo "  $server $point ..." >&2
            runs=
            for r in $(seq "$REPEAT"); do
                wait_quiet
                t0=$(cpu_ticks)
                one=$(taskset -c "$LOAD_CPU" "$BIN/envhub-load" "${args[@]}" -c "$c" -d "$d" \
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
            # CPU over the whole run, per correct reply of the whole run.
            CPU[$server,$point]=$(awk -v t="$ticks" -v n="$(field total "$line")" \
                'BEGIN { if (n > 0) printf "%.2f", t * 10000 / n; else print "-" }')
            ${AFTER_POINT:-true}
        done
        stop_server
    done
}

# print_points TITLE: the throughput table as markdown.
print_points() {
    local point server
    echo
    echo "### $1"
    echo
    echo "| C x D | server | req/s | p50 µs | p99 µs | server CPU µs/req | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for point in $POINTS; do
        for server in $SERVERS; do
            echo "| $point | $server | ${RPS[$server,$point]} | ${P50[$server,$point]} | ${P99[$server,$point]} | ${CPU[$server,$point]} | ${ERR[$server,$point]} |"
        done
    done
}

# print_footer: the busy-machine warning, if any, and where the logs are.
print_footer() {
    echo
    if [ "$BUSY_RUNS" -gt 0 ]; then
        echo "**$BUSY_RUNS runs started while the CPUs were less than 90 % idle: their figures are suspect.**"
        echo
    fi
    echo "(logs: $LOG)"
}
