#!/usr/bin/env bash
# Disk boot benchmark: the DNS image's launch-to-first-answer time from its
# GPT disk through GRUB on SeaBIOS and OVMF (q35, TCG), beside a direct
# -kernel (PVH) boot with the same zone as -initrd; and the sizes of the
# ELF, the raw disk (apparent and allocated), qcow2, ISO and GCE tarball.
# Prints Markdown tables.
#
#   bench/image/run.sh [RUNS]      (default 5 per case, interleaved)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo xtask bench-image "${1:-5}"
