#!/usr/bin/env bash
# CI for the firmware (embedded/boards: the MPS2 and NUCLEO boards and the
# crate they share): host unit tests, lints, the release builds and their
# sizes, QEMU boot smoke tests of the MPS2 build, and, as root, a network
# test in a network namespace of its own.
#
#   embedded/boards/ci.sh build      # tools, host tests, lints, release builds, sizes
#   embedded/boards/ci.sh smoke      # build, then the QEMU boot smoke tests
#   embedded/boards/ci.sh [all]      # smoke, then the network test (needs root)
#   ENVHUB_REQUIRE_ALL=1 ci.sh       # a skipped step is a failure
#
# Installs what it lacks: the thumbv7em-none-eabihf target and llvm-tools
# (rustup), flip-link (cargo install), qemu-system-arm and
# binutils-arm-none-eabi (apt-get, as root). Uses $CARGO_TARGET_DIR if set.
# The firmware's defmt log is decoded by envhub-defmt, the end-to-end
# tests' decoder (tests/src/bin/envhub-defmt.rs), built from the host
# workspace; people use defmt-print, which prints the same lines.
#
# Budget of the MPS2 board build (release, no semihosting): flash (vector
# table + .text + .rodata + .data) <= 40 KiB; static RAM (.data + .bss +
# .uninit) <= 40 KiB; stack >= 4 KiB. mps2-an386/build.rs writes memory.x
# with exactly these regions, so the link already fails when they are
# broken; this script reports the numbers. The QEMU test build (feature
# semihosting, never flashed) may use 48 KiB of flash. The NUCLEO build has
# the chip's 2 MiB and 512 KiB; its sizes are printed.
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
BOARDS=$(pwd)
ROOT=$(cd ../.. && pwd)
TARGET=thumbv7em-none-eabihf
HOST=$(rustc -vV | sed -n 's/^host: //p')
OUT=${CARGO_TARGET_DIR:-$BOARDS/target}
HOST_OUT=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
KIB=1024
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

step "host unit tests (shared crate, LAN9118 driver, UART, timer, STM32 DMA adapter)"
cargo test --target "$HOST"

step "lints"
cargo fmt --all --check
cargo clippy --target "$HOST" --all-targets -- -D warnings
(cd mps2-an386 && cargo clippy --release -- -D warnings)
(cd mps2-an386 && cargo clippy --release --features semihosting,overflow-test -- -D warnings)
(cd mps2-an386 && cargo clippy --release --features semihosting,panic-test -- -D warnings)
(cd nucleo-f767zi && cargo clippy --release -- -D warnings)

# Builds board $1's release firmware (binary $2) with features $4 and copies
# the ELF to $WORK/$3.elf.
build() {
    local board=$1 bin=$2 name=$3 features=${4:-}
    (cd "$board" && cargo build --release ${features:+--features "$features"}) ||
        fail "release build of $board ($name) failed: over the memory budget? (see the linker error)"
    cp "$OUT/$TARGET/release/$bin" "$WORK/$name.elf"
}

kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }

# Prints the sizes of ELF $1; with budgets $2 (flash) and $3 (static RAM)
# in KiB, checks them and a stack of at least 4 KiB.
check_size() {
    local elf=$1 flash_budget=${2:-} ram_budget=${3:-} vt text rodata data bss uninit flash ram stack
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
    echo "$(basename "$elf"): flash $flash B ($(kib "$flash")${flash_budget:+; budget $flash_budget KiB}):" \
        "vector table $vt + .text $text + .rodata $rodata + .data $data"
    echo "$(basename "$elf"): static RAM $ram B ($(kib "$ram")${ram_budget:+; budget $ram_budget KiB}):" \
        ".data $data + .bss $bss + .uninit ${uninit:-0}; stack $stack B ($(kib "$stack"))"
    if [ -n "$flash_budget" ]; then
        [ "$flash" -le $((flash_budget * KIB)) ] || fail "flash $flash B > $flash_budget KiB"
        [ "$ram" -le $((ram_budget * KIB)) ] || fail "static RAM $ram B > $ram_budget KiB"
        [ "$stack" -ge $((4 * KIB)) ] || fail "stack $stack B < 4 KiB"
    fi
}

step "release builds and sizes ($SIZE -A)"
build mps2-an386 envhub-fw mps2-board
check_size "$WORK/mps2-board.elf" 40 40
build mps2-an386 envhub-fw mps2-semihosting semihosting
check_size "$WORK/mps2-semihosting.elf" 48 40
build mps2-an386 envhub-fw mps2-overflow semihosting,overflow-test
build mps2-an386 envhub-fw mps2-panic semihosting,panic-test
build nucleo-f767zi envhub-nucleo nucleo
check_size "$WORK/nucleo.elf"
if [ "$MODE" = build ]; then
    step "firmware builds and size budget passed"
    exit 0
fi

# The firmware logs defmt frames on the UART (QEMU's stdout, kept raw in
# $WORK/NAME.raw); decode() turns them into text in $WORK/NAME.out. (From
# the repository's root: the boards' .cargo/config.toml would make the
# decoder a thumbv7em build.)
(cd "$ROOT" && cargo build --quiet -p envhub-tests --bin envhub-defmt)
DECODER="$HOST_OUT/debug/envhub-defmt"
decode() {
    local elf=$1 out=$2
    "$DECODER" "$elf" <"$WORK/$out.raw" >"$WORK/$out.out" 2>&1 || true
}

# Runs QEMU on ELF $1 with extra arguments, raw output to $WORK/$2.raw, in
# the background; sets QEMU_PID.
qemu_start() {
    local elf=$1 out=$2; shift 2
    qemu-system-arm -M mps2-an386 -nographic -kernel "$elf" "$@" >"$WORK/$out.raw" 2>"$WORK/$out.err" &
    QEMU_PID=$!
    QEMU_PIDS+=("$QEMU_PID")
}

# Waits up to $3 seconds for text $1 in the decoded log of ELF $2's run $4.
wait_for() {
    local text=$1 elf=$2 secs=$3 out=$4 i
    for ((i = 0; i < secs * 4; i++)); do
        decode "$elf" "$out"
        grep -qF "$text" "$WORK/$out.out" && return 0
        sleep 0.25
    done
    cat "$WORK/$out.out" "$WORK/$out.err"
    return 1
}

qemu_stop() {
    kill "$QEMU_PID" 2>/dev/null || true
    wait "$QEMU_PID" 2>/dev/null || true
}

# Runs QEMU to completion (at most 20 s), decodes its log; prints its status.
qemu_run() {
    local elf=$1 out=$2; shift 2
    local status=0
    timeout 20 qemu-system-arm -M mps2-an386 -nographic -nic none -kernel "$elf" "$@" \
        >"$WORK/$out.raw" 2>"$WORK/$out.err" || status=$?
    decode "$elf" "$out"
    echo "$status"
}

SH="enable=on,target=native,arg=envhub-fw"
BOARD="$WORK/mps2-board.elf"
SEMI="$WORK/mps2-semihosting.elf"

step "QEMU boot smoke tests (MPS2 AN386; defmt log decoded by envhub-defmt)"
qemu_start "$BOARD" boot -nic none
wait_for "listening on 192.168.69.1:8080" "$BOARD" 20 boot || fail "board build: no readiness line"
qemu_stop
echo "board build: boots, listens on 192.168.69.1:8080; its log:"
cat "$WORK/boot.out"

qemu_start "$SEMI" args -nic none \
    -semihosting-config "$SH,arg=--port,arg=9000,arg=--max-clients,arg=3,arg=--mode,arg=echo"
wait_for "listening on 192.168.69.1:9000" "$SEMI" 20 args || fail "semihosting build: --port ignored"
qemu_stop
echo "semihosting build: --port 9000 taken"

status=$(qemu_run "$SEMI" badport -semihosting-config "$SH,arg=--port,arg=0")
[ "$status" = 2 ] && grep -q "error: invalid value" "$WORK/badport.out" ||
    { cat "$WORK/badport.out"; fail "--port 0: status $status, wanted 2 and an error"; }
echo "semihosting build: --port 0 refused, exit status 2"

status=$(qemu_run "$WORK/mps2-overflow.elf" overflow -semihosting-config enable=on,target=native)
[ "$status" = 103 ] && grep -q "fatal: stack overflow" "$WORK/overflow.out" ||
    { cat "$WORK/overflow.out"; fail "stack overflow not caught (status $status)"; }
echo "overflow-test build: stack overflow caught by the guard, logged, QEMU exited with 103"

status=$(qemu_run "$WORK/mps2-panic.elf" panic -semihosting-config enable=on,target=native)
[ "$status" = 101 ] && grep -q "panic at .*src/main.rs:" "$WORK/panic.out" ||
    { cat "$WORK/panic.out"; fail "panic location not logged (status $status)"; }
echo "panic-test build: $(grep -o 'panic at [^ ]*' "$WORK/panic.out"), QEMU exited with 101"

if [ "$MODE" = smoke ]; then
    step "firmware builds, size budget and QEMU smoke tests passed"
    exit 0
fi

step "network test (network namespace, TAP, QEMU)"
if [ "$(id -u)" != 0 ]; then
    skip "network test needs root (netns, TAP)"
elif ! command -v ip >/dev/null || ! command -v python3 >/dev/null; then
    skip "network test needs ip and python3"
else
    command -v ping >/dev/null || apt_install iputils-ping
    NETNS="envhub-fw-$$"
    ip netns add "$NETNS"
    ip netns exec "$NETNS" ip link set lo up
    ip netns exec "$NETNS" ip tuntap add dev tap0 mode tap
    ip netns exec "$NETNS" ip addr add 192.168.69.100/24 dev tap0
    ip netns exec "$NETNS" ip link set tap0 up
    QEMU_PID=""
    ip netns exec "$NETNS" qemu-system-arm -M mps2-an386 -nographic -kernel "$SEMI" \
        -nic tap,ifname=tap0,script=no,downscript=no \
        -semihosting-config "$SH,arg=--max-clients,arg=8,arg=--idle-timeout,arg=30" \
        >"$WORK/net.raw" 2>"$WORK/net.err" &
    QEMU_PID=$!
    QEMU_PIDS+=("$QEMU_PID")
    wait_for "listening on 192.168.69.1:8080" "$SEMI" 20 net || fail "no readiness line"
    ip netns exec "$NETNS" timeout 60 python3 "$BOARDS/mps2-an386/net_test.py" 192.168.69.1 8080 8 ||
        fail "network test"
    qemu_stop
    ip netns del "$NETNS"
    NETNS=""
fi

step "firmware CI passed (builds, size budget, QEMU smoke and network tests)"
