#!/usr/bin/env bash
# Builds the nested Xen test host: Xen 4.17 with a Debian bookworm dom0
# (PV, Linux 6.1) whose root file system is a raw ext4 image. The result is
# cached in OUT (default target/xen-host) and rebuilt only when this script
# or the dom0 init changes. Needs root (debootstrap) and about 4 minutes.
#
#   tests/xen/build-host.sh [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-target/xen-host}
stamp=$(cat "$0" "$here/dom0-init" | sha256sum | cut -c1-16)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ]; then
  echo "xen host up to date in $out"
  exit 0
fi
# The Debian mirror this machine's apt already uses.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
rm -rf "$out"
mkdir -p "$out"
root="$out/root"
packages=xen-hypervisor-4.17-amd64,xen-utils-4.17,xenstore-utils,linux-image-amd64,busybox,iproute2,bridge-utils,kmod,udev,bind9-dnsutils
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" > "$out/debootstrap.log" 2>&1 \
  || { tail -20 "$out/debootstrap.log"; exit 1; }
cp "$here/dom0-init" "$root/sbin/morgana-init"
chmod +x "$root/sbin/morgana-init"
mkdir -p "$root/share"
cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
cp "$root"/boot/initrd.img-* "$out/initrd.img"
zcat "$root"/boot/xen-4.17-amd64.gz > "$out/xen"
# Drop what dom0 never needs, then make the disk.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/cache/apt/archives/*.deb "$root"/boot/*
mkfs.ext4 -q -F -L morgana-dom0 -d "$root" "$out/rootfs.img" 1536M
rm -rf "$root"
echo "$stamp" > "$out/stamp"
echo "xen host built in $out"
