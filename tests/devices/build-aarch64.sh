#!/usr/bin/env bash
# An aarch64 "device" for the device-pool tests: Debian's arm64 Python 3.11 with numpy and onnxruntime's
# aarch64 wheels, run by qemu-user on this x86 machine. Built into DEST (default .devices/aarch64) from the
# package registries (Debian's mirror, PyPI); `make aarch64-device` runs it. Without apt-get or root it says
# why and exits 0: the tests that need it are skipped. Timings under emulation are never the board's: the
# runner's fingerprint says `emulated`, bench warns and the gate refuses them.
set -euo pipefail
DEST=${1:-.devices/aarch64}
PY=${2:-.venv/bin/python}
ROOT="$DEST/root"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

skip() { echo "aarch64 device not built: $*" >&2; exit 0; }
[ "$(uname -m)" = x86_64 ] || skip "this machine is $(uname -m); the emulated device is for x86_64 hosts"
if ! command -v qemu-aarch64 >/dev/null || ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] || skip "qemu-user and debootstrap are missing (apt-get as root installs them)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user debootstrap >/dev/null || skip "apt-get install failed"
fi

rm -rf "$ROOT.partial" && mkdir -p "$ROOT.partial"
# --foreign: download and unpack only (the second stage would need to run arm64 binaries as root)
debootstrap --arch=arm64 --foreign --variant=minbase \
  --include=python3-minimal,libpython3.11-stdlib,libstdc++6,libgcc-s1 bookworm "$ROOT.partial" "$MIRROR" >/dev/null \
  || skip "debootstrap could not fetch Debian's arm64 packages from $MIRROR"
for deb in "$ROOT.partial"/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$ROOT.partial"; done
rm -rf "$ROOT.partial"/var/cache/apt/archives/*.deb

# The same numpy and onnxruntime versions as the host, as aarch64 wheels
versions=$("$PY" -c "import numpy, onnxruntime; print(f'numpy=={numpy.__version__} onnxruntime=={onnxruntime.__version__}')")
"$PY" -m pip install --quiet --no-deps --target "$ROOT.partial/opt/site" --python-version 3.11 --only-binary=:all: \
  --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 $versions

# Under qemu-user the guest reads the host's /proc/cpuinfo (x86 fields), on which onnxruntime's CPU
# detection crashes; qemu's -L prefix serves this file instead: a 2-core Cortex-A76 (a Raspberry Pi 5's).
mkdir -p "$ROOT.partial/proc"
for core in 0 1; do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$core"
done > "$ROOT.partial/proc/cpuinfo"

rm -rf "$ROOT" && mv "$ROOT.partial" "$ROOT"
cat > "$DEST/python" <<WRAPPER
#!/bin/sh
# Debian's arm64 Python under qemu-user, with numpy and onnxruntime (built by tests/devices/build-aarch64.sh)
ROOT="$(cd "$ROOT" && pwd)"
PYTHONPATH="\$ROOT/opt/site" exec qemu-aarch64 -L "\$ROOT" "\$ROOT/usr/bin/python3.11" "\$@"
WRAPPER
chmod +x "$DEST/python"
"$DEST/python" -c "import platform, numpy, onnxruntime; print('aarch64 device:', platform.machine(), 'numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__)"
