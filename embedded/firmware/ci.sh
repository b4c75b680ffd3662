#!/usr/bin/env bash
# CI for the firmware (envhub-fw): host unit tests, lints, the release build
# and its size budget, QEMU boot smoke tests, and, as root, a network test
# in a network namespace of its own.
#
#   embedded/firmware/ci.sh build      # tools, host tests, lints, release builds, sizes
#   embedded/firmware/ci.sh smoke      # build, then the QEMU boot smoke tests
#   embedded/firmware/ci.sh [all]      # smoke, then the network test (needs root)
#   ENVHUB_REQUIRE_ALL=1 ci.sh         # a skipped step is a failure
#
# Installs what it lacks: the thumbv7em-none-eabihf target and llvm-tools
# (rustup), flip-link (cargo install), qemu-system-arm and
# binutils-arm-none-eabi (apt-get, as root). Uses $CARGO_TARGET_DIR if set.
#
# Budget (release build): flash (vector table + .text + .rodata + .data)
# <= 48 KiB; static RAM (.data + .bss + .uninit) + stack <= 48 KiB with a
# stack of at least 4 KiB. memory.x declares exactly these regions, so the
# link already fails when they are broken; this script reports the numbers.
set -euo pipefail

MODE=${1:-all}
case "$MODE" in
build | smoke | all) ;;
*)
    echo "usage: $0 [build|smoke|all]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")"
FW_DIR=$(pwd)
TARGET=thumbv7em-none-eabihf
HOST=$(rustc -vV | sed -n 's/^host: //p')
OUT=${CARGO_TARGET_DIR:-$FW_DIR/target}
WORK=$(mktemp -d)
BUDGET=$((48 * 1024))
MIN_STACK=$((4 * 1024))
QEMU_PIDS=()
NETNS=""

cleanup() {
    for pid in "${QEMU_PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [ -n "$NETNS" ]; then ip netns del "$NETNS" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() {
    echo "SKIPPED: $*"
    if [ "${ENVHUB_REQUIRE_ALL:-0}" = 1 ]; then fail "skipped with ENVHUB_REQUIRE_ALL=1: $*"; fi
}

apt_install() {
    if [ "$(id -u)" != 0 ]; then fail "need $* (apt-get install needs root)"; fi
    if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "tools"
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
command -v flip-link >/dev/null || cargo install --locked flip-link
command -v qemu-system-arm >/dev/null || apt_install qemu-system-arm
if command -v arm-none-eabi-size >/dev/null; then
    SIZE=arm-none-eabi-size
    NM=arm-none-eabi-nm
else
    rustup component add llvm-tools >/dev/null 2>&1 || true
    BIN="$(rustc --print sysroot)/lib/rustlib/$HOST/bin"
    if [ -x "$BIN/llvm-size" ]; then
        SIZE="$BIN/llvm-size"
        NM="$BIN/llvm-nm"
    else
        apt_install binutils-arm-none-eabi
        SIZE=arm-none-eabi-size
        NM=arm-none-eabi-nm
    fi
fi
echo "size tool: $SIZE; qemu: $(qemu-system-arm --version | head -1)"

step "host unit tests (driver, clock, settings, log, UART, timer)"
cargo test --target "$HOST"

step "lints"
cargo fmt --check
cargo clippy --target "$HOST" --all-targets -- -D warnings
cargo clippy --release -- -D warnings
cargo clippy --release --features semihosting,overflow-test -- -D warnings

# Builds the release firmware with features $2 and copies the ELF to $1.
build() {
    local name=$1 features=$2
    cargo build --release ${features:+--features "$features"} ||
        fail "release build ($name) failed: over the memory.x budget? (see the linker error)"
    cp "$OUT/$TARGET/release/envhub-fw" "$WORK/$name.elf"
}

# Prints the sizes of an ELF and checks the budget.
check_size() {
    local elf=$1 vt text rodata data bss uninit flash ram stack
    section() { "$SIZE" -A "$elf" | awk -v s="$1" '$1 == s { print $2 }'; }
    vt=$(section .vector_table); text=$(section .text); rodata=$(section .rodata)
    data=$(section .data); bss=$(section .bss); uninit=$(section .uninit)
    flash=$((vt + text + rodata + data))
    ram=$((data + bss + ${uninit:-0}))
    # flip-link: the stack spans _stack_end (RAM start) to _stack_start.
    local start end
    start=$("$NM" "$elf" | awk '$3 == "_stack_start" { print $1 }')
    end=$("$NM" "$elf" | awk '$3 == "_stack_end" { print $1 }')
    stack=$((16#$start - 16#$end))
    kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
    echo "$(basename "$elf"): flash $flash B ($(kib "$flash"); budget $BUDGET B):" \
        "vector table $vt + .text $text + .rodata $rodata + .data $data"
    echo "$(basename "$elf"): RAM $((ram + stack)) B (budget $BUDGET B):" \
        "static $ram B ($(kib "$ram"): .data $data + .bss $bss + .uninit ${uninit:-0})" \
        "+ stack $stack B ($(kib "$stack"), at least $MIN_STACK B)"
    [ "$flash" -le "$BUDGET" ] || fail "flash $flash B > $BUDGET B"
    [ "$stack" -ge "$MIN_STACK" ] || fail "stack $stack B < $MIN_STACK B"
    [ $((ram + stack)) -le "$BUDGET" ] || fail "RAM $((ram + stack)) B > $BUDGET B"
}

step "release builds and size budget ($SIZE -A)"
build board ""
check_size "$WORK/board.elf"
build semihosting semihosting
check_size "$WORK/semihosting.elf"
build overflow semihosting,overflow-test
if [ "$MODE" = build ]; then
    step "firmware build and size budget passed"
    exit 0
fi

# Runs QEMU on ELF $1 with extra arguments, output to $WORK/$2.out, in the
# background; sets QEMU_PID.
qemu_start() {
    local elf=$1 out=$2; shift 2
    qemu-system-arm -M mps2-an386 -nographic -kernel "$elf" "$@" >"$WORK/$out.out" 2>&1 &
    QEMU_PID=$!
    QEMU_PIDS+=("$QEMU_PID")
}

# Waits up to $2 seconds for text $1 in $WORK/$3.out.
wait_for() {
    local text=$1 secs=$2 out=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        grep -qF "$text" "$WORK/$out.out" && return 0
        sleep 0.1
    done
    cat "$WORK/$out.out"
    return 1
}

qemu_stop() {
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
}

# Runs QEMU to completion (at most 20 s); prints its status.
qemu_run() {
    local elf=$1 out=$2; shift 2
    local status=0
    timeout 20 qemu-system-arm -M mps2-an386 -nographic -nic none -kernel "$elf" "$@" \
        >"$WORK/$out.out" 2>&1 || status=$?
    echo "$status"
}

SH="enable=on,target=native,arg=envhub-fw"

step "QEMU boot smoke tests"
qemu_start "$WORK/board.elf" boot -nic none
wait_for "listening on 192.168.69.1:8080" 20 boot || fail "board build: no readiness line"
qemu_stop
echo "board build: boots, listens on 192.168.69.1:8080"

qemu_start "$WORK/semihosting.elf" args -nic none \
    -semihosting-config "$SH,arg=--port,arg=9000,arg=--max-clients,arg=3,arg=--mode,arg=echo"
wait_for "listening on 192.168.69.1:9000" 20 args || fail "semihosting build: --port ignored"
qemu_stop
echo "semihosting build: --port 9000 taken"

status=$(qemu_run "$WORK/semihosting.elf" badport -semihosting-config "$SH,arg=--port,arg=0")
[ "$status" = 2 ] && grep -q "error: invalid value for --port" "$WORK/badport.out" ||
    { cat "$WORK/badport.out"; fail "--port 0: status $status, wanted 2 and an error"; }
echo "semihosting build: --port 0 refused, exit status 2"

status=$(qemu_run "$WORK/overflow.elf" overflow -semihosting-config enable=on,target=native)
[ "$status" != 0 ] && grep -q "fatal: stack overflow" "$WORK/overflow.out" ||
    { cat "$WORK/overflow.out"; fail "stack overflow not caught (status $status)"; }
echo "overflow-test build: stack overflow caught by the guard, QEMU stopped (status $status)"

if [ "$MODE" = smoke ]; then
    step "firmware build, size budget and QEMU smoke tests passed"
    exit 0
fi

step "network test (network namespace, TAP, QEMU)"
if [ "$(id -u)" != 0 ]; then
    skip "network test needs root (netns, TAP)"
elif ! command -v ip >/dev/null || ! command -v python3 >/dev/null; then
    skip "network test needs ip and python3"
else
    NETNS="envhub-fw-$$"
    ip netns add "$NETNS"
    ip netns exec "$NETNS" ip link set lo up
    ip netns exec "$NETNS" ip tuntap add dev tap0 mode tap
    ip netns exec "$NETNS" ip addr add 192.168.69.100/24 dev tap0
    ip netns exec "$NETNS" ip link set tap0 up
    QEMU_PID=""
    ip netns exec "$NETNS" qemu-system-arm -M mps2-an386 -nographic -kernel "$WORK/semihosting.elf" \
        -nic tap,ifname=tap0,script=no,downscript=no \
        -semihosting-config "$SH,arg=--max-clients,arg=8,arg=--idle-timeout,arg=30" \
        >"$WORK/net.out" 2>&1 &
    QEMU_PID=$!
    QEMU_PIDS+=("$QEMU_PID")
    wait_for "listening on 192.168.69.1:8080" 20 net || fail "no readiness line"
    ip netns exec "$NETNS" timeout 60 python3 "$FW_DIR/net_test.py" 192.168.69.1 8080 8 ||
        fail "network test"
    qemu_stop
    ip netns del "$NETNS"
    NETNS=""
fi

step "firmware CI passed (build, size budget, QEMU smoke and network tests)"
