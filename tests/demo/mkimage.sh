#!/usr/bin/env bash
# Makes a small, real, bootable Linux disk image for the demo and the end-to-end tests:
# GPT with an ext2 /boot partition (imprint's kernel and extlinux, BIOS boot through
# syslinux's gptmbr) and an ext4 root partition, last on the disk, with a busybox userland. Its /sbin/init prints a line that says
# it booted from the disk, with the machine's host name, then powers off.
#
# usage: mkimage.sh KERNEL OUT.img [SIZE_MIB]     (needs root: extlinux installs on a mount)
set -euo pipefail
kernel=$1 out=$2 size_mib=${3:-64}
busybox=/bin/busybox
gptmbr=/usr/lib/EXTLINUX/gptmbr.bin
for f in "$kernel" "$busybox" "$gptmbr"; do
	[[ -f $f ]] || { echo "mkimage: $f missing (make setup-demo installs busybox-static, extlinux)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/imprint-mkimage.XXXXXX)
mnt=$work/mnt loop=
cleanup() {
	mountpoint -q "$mnt" && umount "$mnt"
	[[ -n $loop ]] && losetup -d "$loop"
	rm -rf "$work"
}
trap cleanup EXIT

# The root filesystem's contents.
root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,etc/systemd/network,boot,root,tmp} "$work/boot/extlinux"
cp "$busybox" "$root/bin/busybox"
for applet in sh mount umount cat echo hostname poweroff sleep ls uname df; do
	ln -s busybox "$root/bin/$applet"
done
cat >"$root/sbin/init" <<'EOF'
#!/bin/sh
# The deployed system's whole boot: say where we are and stop.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -f /etc/hostname ] && hostname "$(cat /etc/hostname)"
echo "imprint-demo: booted from the provisioned disk: host $(hostname), kernel $(uname -r), root $(cat /proc/cmdline | sed 's/.*root=\([^ ]*\).*/\1/')"
[ -f /etc/motd ] && cat /etc/motd
for key in /root/.ssh/*; do [ -e "$key" ] && ls -ln "$key"; done
for unit in /etc/systemd/network/*; do [ -e "$unit" ] && cat "$unit"; done
echo "imprint-demo: root filesystem $(df -k / | { read -r header; read -r fs size rest; echo "$size"; }) KiB"
poweroff -f
EOF
chmod 755 "$root/sbin/init"
echo "imprint-demo" >"$root/etc/hostname"
cp "$kernel" "$work/boot/bzImage"
cat >"$work/boot/extlinux/extlinux.conf" <<'EOF'
SERIAL 0 115200
DEFAULT linux
TIMEOUT 0
PROMPT 0
LABEL linux
  KERNEL /bzImage
  APPEND root=/dev/vda2 rootfstype=ext4 rw console=ttyS0 panic=1
EOF

# The disk: GPT; /boot from 1 MiB (16 MiB, with the legacy BIOS bootable attribute that
# gptmbr looks for), root from 17 MiB to the end. Filesystems are written from directories
# without mounting, with fixed UUIDs (the bytes still differ from run to run: extlinux
# installs through a mount).
# /boot is ext2 because extlinux 6.04 fails to read kernels from ext4 ("I/O error").
img=$work/disk.img
truncate -s "${size_mib}M" "$img"
printf '%s\n' 'label: gpt' 'label-id: 2C4A8E36-5B1F-4D2B-9A77-1E0C5D3B8F10' \
	'start=2048, size=32768, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, uuid=1D2C3B4A-5F6E-4A8B-9C0D-1E2F3A4B5C6D, name=boot, attrs="LegacyBIOSBootable"' \
	'start=34816, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=9F8E7D6C-5B4A-4392-8170-6F5E4D3C2B1A, name=root' |
	sfdisk --quiet "$img"
partition_bytes() { sfdisk --json "$img" | python3 -c "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][$1]['size'] * 512)"; }
make_fs() { # type label uuid dir size offset
	truncate -s "$5" "$work/fs"
	E2FSPROGS_FAKE_TIME=1 mkfs."$1" -q -F -L "$2" -U "$3" -E hash_seed="$3" -d "$4" "$work/fs"
	dd if="$work/fs" of="$img" bs=1M seek=$(($6 / 1048576)) conv=notrunc,sparse status=none
	rm "$work/fs"
}
make_fs ext2 boot 1d2c3b4a-5f6e-4a8b-9c0d-1e2f3a4b5c6d "$work/boot" "$(partition_bytes 0)" $((2048 * 512))
make_fs ext4 root 6b1ae3c8-3f6e-4c4e-9d5e-0d5f1d2a9e01 "$root" "$(partition_bytes 1)" $((34816 * 512))

# The boot loader: extlinux into the filesystem (needs it mounted), gptmbr into the MBR.
# Mount the partition of a partition-scanned loop device, not a loop device at an offset:
# extlinux records the partition's start sector from sysfs, and an offset loop device
# would make it 0 ("I/O error" loading the kernel).
loop=$(losetup --find --show --partscan "$img")
# Some host kernels are built without GPT support and find no partitions: add them by hand.
[[ -b ${loop}p1 ]] || partx --add "$loop"
mkdir -p "$mnt"
mount "${loop}p1" "$mnt"
extlinux --install "$mnt/extlinux" >/dev/null 2>&1
umount "$mnt"
losetup -d "$loop"
loop=
dd if="$gptmbr" of="$img" bs=440 count=1 conv=notrunc status=none

mkdir -p "$(dirname "$out")"
mv "$img" "$out"
echo "mkimage: $out (${size_mib} MiB: GPT, ext2 /boot with extlinux, ext4 root)"
