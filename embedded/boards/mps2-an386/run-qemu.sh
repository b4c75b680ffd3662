#!/usr/bin/env bash
# cargo's runner for the MPS2 board: boots ELF $1 in QEMU (no network; the
# semihosting command line is the rest of the arguments) and decodes its
# defmt log from the UART with defmt-print.
#   cargo run --release --features semihosting -- --port 9000
set -euo pipefail
elf=$1
shift
sh="enable=on,target=native,arg=envhub-fw"
for arg in "$@"; do sh+=",arg=${arg//,/,,}"; done
qemu-system-arm -M mps2-an386 -nographic -nic none -semihosting-config "$sh" -kernel "$elf" |
    defmt-print -e "$elf"
