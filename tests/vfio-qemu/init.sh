#!/bin/busybox sh
# /init of the guest built by run.sh: loads the VFIO modules, binds QEMU's edu device to
# vfio-pci, runs the edu test program, `espo probe` and `espo run` (engine = "vfio"), prints
# a verdict, powers off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
finish() {
    echo "VFIO-QEMU SUMMARY: $passed passed, $failed failed"
    if [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]; then echo "VFIO-QEMU RESULT: PASS"; else echo "VFIO-QEMU RESULT: FAIL"; fi
    sync
    poweroff -f
}

echo "VFIO-QEMU: guest up, kernel $(uname -r)"
if [ -d /sys/class/iommu ] && [ -n "$(ls /sys/class/iommu)" ]; then
    pass "iommu: $(ls /sys/class/iommu | tr '\n' ' ')"
else
    fail "iommu: /sys/class/iommu is empty"
fi

for module in $(cat /modules.order); do
    if insmod "/lib/modules/$module.ko"; then :; else fail "insmod $module"; fi
done
[ -c /dev/vfio/vfio ] && pass "modules: $(tr '\n' ' ' < /modules.order)" || fail "modules: no /dev/vfio/vfio"

bdf=""
for dev in /sys/bus/pci/devices/*; do
    if [ "$(cat "$dev/vendor")" = 0x1234 ] && [ "$(cat "$dev/device")" = 0x11e8 ]; then bdf=${dev##*/}; fi
done
if [ -z "$bdf" ]; then fail "edu: no 1234:11e8 device"; finish; fi
sysdev=/sys/bus/pci/devices/$bdf
group=$(readlink "$sysdev/iommu_group"); group=${group##*/}
echo "VFIO-QEMU: edu at $bdf, IOMMU group $group, reset methods: $(cat "$sysdev/reset_method" 2>/dev/null)"

echo vfio-pci > "$sysdev/driver_override"
[ -e "$sysdev/driver" ] && echo "$bdf" > "$sysdev/driver/unbind"
echo "$bdf" > /sys/bus/pci/drivers_probe
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -c "/dev/vfio/$group" ] && break; sleep 1; done
driver=$(readlink "$sysdev/driver"); driver=${driver##*/}
if [ "$driver" = vfio-pci ] && [ -c "/dev/vfio/$group" ]; then
    pass "bind: $bdf bound to vfio-pci, /dev/vfio/$group present"
else
    fail "bind: driver '$driver', /dev/vfio/$group missing"; finish
fi

echo "VFIO-QEMU: running the edu test program (VFIO container)"
if /bin/edu "$bdf" container; then pass "edu test program, container"; else fail "edu test program, container (exit $?)"; fi
if [ -c /dev/iommu ]; then
    echo "VFIO-QEMU: running the edu test program (iommufd)"
    if /bin/edu "$bdf" iommufd; then pass "edu test program, iommufd"; else fail "edu test program, iommufd (exit $?)"; fi
else
    echo "VFIO-QEMU: no /dev/iommu in this kernel: iommufd path not run"
fi

echo "VFIO-QEMU: running espo probe --pci $bdf"
/bin/espo probe --pci "$bdf" > /tmp/probe.txt 2>&1
probe_rc=$?
cat /tmp/probe.txt
[ "$probe_rc" -eq 0 ] && pass "espo probe exit 0" || fail "espo probe exit $probe_rc"
if grep -qE "IOMMU group $group([^0-9]|$)" /tmp/probe.txt; then
    pass "espo probe reports IOMMU group $group"
else
    fail "espo probe does not report IOMMU group $group"
fi

# espo run with engine = "vfio" (examples/gw-gw/esp-vfio/gw-b.toml, pointed at edu): the
# gateway opens the device through VFIO (container, group, device, BAR0 mapped) and reads
# the ESPO-1 identification by MMIO. edu is no ESPO-1: it answers all ones at DEVICE_ID
# (0x10) and STATUS (0x214), registers it lacks, which the card driver takes for a card
# gone from the bus — so espo run must stop at opening the card, after VFIO let it in.
echo "VFIO-QEMU: espo run with engine = vfio on $bdf"
sed "s/0000:03:00.0/$bdf/" /gw-b.toml > /tmp/gw-b.toml
/bin/espo run --config /tmp/gw-b.toml > /tmp/run.txt 2>&1
run_rc=$?
cat /tmp/run.txt
if [ "$run_rc" -ne 0 ] && grep -qE "opening the card failed: (not an ESPO-1 card|the card is gone)" /tmp/run.txt \
    && ! grep -q "through VFIO" /tmp/run.txt; then
    pass "espo run (engine = vfio) opened $bdf through VFIO, read its BAR0 and refused it: not an ESPO-1"
else
    fail "espo run (engine = vfio): exit $run_rc, not refused at the card's identification"
fi
finish
