#!/usr/bin/env bash
# Proves espo's VFIO backend on a real Linux VFIO stack: boots Debian 12's 6.1 kernel under
# QEMU (software emulation, no KVM needed) with an emulated Intel IOMMU and QEMU's `edu`
# device, binds edu to vfio-pci in the guest, runs the edu test program
# (driver/examples/edu.rs, built on espo's VFIO backend), `espo probe` and `espo run` with
# engine = "vfio" (which must reach the device and refuse it: edu is no ESPO-1), and reads the
# verdict from the serial console. Exits non-zero unless every step passed.
#
# Installs what it needs (qemu-system-x86, busybox-static, cpio, kmod) and caches the guest
# kernel under target/vfio-qemu, so reruns only rebuild the binaries and the initramfs.
set -euo pipefail
cd "$(dirname "$0")/../.."
target_dir=${CARGO_TARGET_DIR:-target}
work=$target_dir/vfio-qemu
mkdir -p "$work"
export DEBIAN_FRONTEND=noninteractive

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
# The initramfs has no libc: busybox must be the static build.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || need+=(busybox-static)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v modinfo >/dev/null 2>&1 || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
    echo "== vfio-qemu: installing ${need[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The guest kernel and its modules, from one Debian package so their versions match.
kdir=$work/kernel
if ! ls "$kdir"/boot/vmlinuz-6.1.* >/dev/null 2>&1; then
    echo "== vfio-qemu: fetching Debian's linux-image-6.1 package"
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1\./ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1\./ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "vfio-qemu: no linux-image-6.1 package found" >&2; exit 1; }
    rm -rf "$kdir" "$work"/deb && mkdir -p "$work"/deb
    (cd "$work"/deb && apt-get download -qq "$pkg")
    dpkg-deb -x "$work"/deb/*.deb "$kdir"
    rm -rf "$work"/deb
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-6.1.* | head -n1)
kver=${vmlinuz##*/vmlinuz-}
moddir=$kdir/lib/modules/$kver
echo "== vfio-qemu: guest kernel $kver"

echo "== vfio-qemu: building static binaries"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile ci --quiet \
    --target x86_64-unknown-linux-gnu -p espo-driver --example edu
RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile ci --quiet \
    --target x86_64-unknown-linux-gnu -p espo --bin espo
bindir=$target_dir/x86_64-unknown-linux-gnu/ci

# The VFIO modules and everything they depend on, dependencies first. Whatever the kernel
# has built in (=y in its config) has no .ko and needs no loading.
order=()
ko_of() { find "$moddir" \( -name "$1.ko" -o -name "${1//_/-}.ko" -o -name "${1//-/_}.ko" \) | head -n1; }
add_module() {
    local name=$1 ko dep
    for done_name in "${order[@]:-}"; do [ "$done_name" = "$name" ] && return 0; done
    ko=$(ko_of "$name")
    if [ -z "$ko" ]; then
        echo "   $name: built in or absent"
        return 0
    fi
    for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do add_module "$dep"; done
    order+=("$(basename "$ko" .ko)")
}
for m in irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci; do add_module "$m"; done

root=$work/initramfs
rm -rf "$root" && mkdir -p "$root"/{bin,lib/modules,proc,sys,dev,tmp}
cp /bin/busybox "$root"/bin/busybox
cp tests/vfio-qemu/init.sh "$root"/init && chmod +x "$root"/init
cp "$bindir"/examples/edu "$root"/bin/edu
cp "$bindir"/espo "$root"/bin/espo
cp examples/gw-gw/esp-vfio/gw-b.toml "$root"/gw-b.toml
for m in "${order[@]}"; do cp "$(ko_of "$m")" "$root/lib/modules/$m.ko"; done
printf '%s\n' "${order[@]}" > "$root"/modules.order
echo "   modules: ${order[*]}"
(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$work"/initramfs.cpio.gz

echo "== vfio-qemu: booting the guest (TCG)"
log=$work/console.log
start=$(date +%s)
set +e
timeout 900 qemu-system-x86_64 \
    -machine q35,kernel-irqchip=split -accel tcg -cpu max -smp 2 -m 768M \
    -device intel-iommu,intremap=on \
    -device pcie-root-port,id=rp0,chassis=1,slot=1 \
    -device edu,bus=rp0 \
    -kernel "$vmlinuz" -initrd "$work"/initramfs.cpio.gz \
    -append 'console=ttyS0 intel_iommu=on hugepagesz=2M hugepages=40 panic=-1 loglevel=4' \
    -nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1
qemu_rc=$?
set -e
echo "== vfio-qemu: guest ran $(( $(date +%s) - start )) s (qemu exit $qemu_rc); console:"
grep -E '^(PASS|FAIL|INFO|VFIO|edu:|\[( ok |FAIL|info|warn)\]|       )|DMAR' "$log" | sed 's/^/   /'
if grep -q '^VFIO-QEMU RESULT: PASS' "$log"; then
    echo "== vfio-qemu: all steps passed"
else
    echo "== vfio-qemu: FAILED (full console in $log)" >&2
    exit 1
fi
