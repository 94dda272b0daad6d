#!/usr/bin/env bash
# Installs what espo's tests need on a fresh Debian machine, then runs every test.
# Idempotent: on a machine that already has the tools it goes straight to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# tool:package pairs the suite uses (ip: the network-namespace tests of tests/netns; nft:
# the guard `espo run` installs, which those tests start; swanctl, pki, charon and its
# kernel-libipsec plugin: strongSwan, the IKEv2 peer of tests/netns/ike.rs; tshark: the
# independent decoder of captures; iperf3: the traffic of the tunnel bench, benches/tunnel.rs;
# ping: the bench's round trip beside its TCP flows)
for pair in verilator:verilator yosys:yosys ip:iproute2 nft:nftables swanctl:strongswan-swanctl \
            pki:strongswan-pki tshark:tshark iperf3:iperf3 ping:iputils-ping; do
  tool=${pair%%:*}; pkg=${pair##*:}
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# perf: the tunnel bench's --perf, where the machine's time goes (checked by running it:
# linux-base may leave a wrapper at /usr/bin/perf that only names the missing package)
perf --version >/dev/null 2>&1 || need_apt+=(linux-perf)
[ -x /usr/lib/ipsec/charon ] || need_apt+=(strongswan-charon)
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || need_apt+=(libcharon-extra-plugins)
# charon's openssl plugin (ECDSA and RSA certificates, the ECP and X25519 groups the IKE
# tests negotiate): a recommended package, which --no-install-recommends leaves out
[ -e /usr/lib/ipsec/plugins/libstrongswan-openssl.so ] || need_apt+=(libstrongswan-standard-plugins)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# A fresh machine builds espo without the RTL co-simulation (no Verilator needed); there
# `--engine rtl` must say how to get it.
echo "== espo without the rtl feature"
cargo build --profile ci --bin espo
if target/ci/espo validate --engine rtl 2>target/espo-no-rtl.txt; then
  echo "espo validate --engine rtl ran without the rtl feature"; exit 1
fi
grep -q -- "--features rtl" target/espo-no-rtl.txt

# Every crate, espo-rtl (Verilator) included, and espo with the rtl feature: tests/
# validate_rtl.rs runs `espo validate --engine rtl --packets 2000`.
# The `ci` profile: release's optimisation without its whole-program LTO (Cargo.toml).
echo "== cargo nextest (workspace, profile ci, --features espo/rtl)"
cargo nextest run --workspace --cargo-profile ci --features espo/rtl --no-fail-fast

# The RTL core synthesizes for a generic target (datasheet §15.5) and prints its cell count.
# Yosys is single-threaded and takes minutes, so it runs beside the QEMU guest and the fuzz
# build below; its output is shown, and its status checked, at the end.
echo "== Yosys synthesis of the RTL core (fpga/rtl/synth.sh), in the background"
mkdir -p target
fpga/rtl/synth.sh target/rtl-synth >target/rtl-synth.out 2>&1 &
synth_pid=$!

# The VFIO backend against the real Linux VFIO API: a QEMU guest (software emulation, no KVM)
# with an emulated Intel IOMMU and QEMU's edu device. ESPO_SKIP_VFIO_QEMU=1 skips it locally.
if [ "${ESPO_SKIP_VFIO_QEMU:-0}" != 1 ]; then
  echo "== VFIO backend in a QEMU guest (tests/vfio-qemu/run.sh)"
  tests/vfio-qemu/run.sh
fi

if [ -d fuzz ]; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
  fi
  echo "== building fuzz targets"
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -O)
fi
echo "== waiting for the Yosys synthesis"
synth_status=0
wait "$synth_pid" || synth_status=$?
cat target/rtl-synth.out
if [ "$synth_status" != 0 ]; then
  echo "Yosys synthesis of the RTL core failed (status $synth_status)"; exit 1
fi
echo "== all tests passed"
