#!/usr/bin/env bash
# Installs the Debian packages the project links against, when any is missing (through sudo when not root).
set -euo pipefail
# libopenmpi-dev and openmpi-bin: several learner processes (MPI ranks, docs/learner-scaling.md).
# librsvg2-bin: rsvg-convert, which turns `dppo compare`'s SVG figures into PNG.
packages=(libnanomsg-dev liblz4-dev libopenblas-dev libmujoco-dev zlib1g-dev pkg-config libopenmpi-dev openmpi-bin librsvg2-bin)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}"
