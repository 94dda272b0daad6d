#!/usr/bin/env bash
# Synthesizes the ESP core (espo_core) with Yosys for a generic gate library and prints its
# cell count. The passes of `synth` run (without the SAT-based `share`, which only costs
# time here), except that memory_map converts ROMs only: the S-boxes become gates, while the
# core's RAMs (SA table, lookup buckets, replay words, packet buffers) stay $mem cells, as an
# FPGA flow maps them to block RAM instead of flip-flops.
# Usage: fpga/rtl/synth.sh [OUT_DIR] (default: a temporary directory).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
files=()
while read -r f; do
  [ -n "$f" ] && [ "${f#\#}" = "$f" ] && files+=("$here/$f")
done < "$here/core.f"
yosys -q -t -l "$out/yosys.log" -p "
  read_verilog -sv ${files[*]}
  hierarchy -check -top espo_core
  synth -top espo_core -flatten -noshare -run begin:fine
  opt -fast
  memory_map -rom-only
  opt -fast
  techmap
  abc -fast
  opt_clean
  check -assert
  tee -o $out/stat.txt stat
" >/dev/null
grep -E "Number of cells|\\\$mem" "$out/stat.txt" | head -20
echo "report: $out/stat.txt"
