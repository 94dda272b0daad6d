#!/usr/bin/env bash
# The soak of key management under traffic, outside the default run (tests/run.sh installs
# what it needs; root): espo and strongSwan, and two espo gateways with one on the card
# model, each renewing the CHILD_SA every 10 s and the IKE SA every 60 s for
# ESPO_SOAK_SECS seconds (600 by default), one after the other, while numbered UDP crosses
# the tunnel both ways and a TCP stream one way. Each must lose, duplicate and corrupt
# nothing, show no (SPI, sequence number) pair twice on the outside, drop nothing for a
# reason a renewal can cause, and keep espo's memory flat (tests/netns/rekey.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
export ESPO_SOAK_SECS="${ESPO_SOAK_SECS:-600}"
echo "== soak: ${ESPO_SOAK_SECS} s each, one after the other"
cargo nextest run --cargo-profile ci --test netns --run-ignored only --test-threads 2 --no-fail-fast \
  --success-output final --failure-output final -E 'test(/rekey::soak_/)'
