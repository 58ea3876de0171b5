#!/usr/bin/env bash
# Installs the Debian packages aislfd builds against. Run as root on Debian 12.
# Skips apt entirely when everything is already installed.
set -euo pipefail
packages="libhdf5-dev zlib1g-dev libpng-dev libjpeg-dev libopenblas-dev pkg-config"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi
if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        echo "swift is at /opt/swift/usr/bin; add it to PATH" >&2
    else
        echo "swift 6 is needed (https://www.swift.org/install/linux/)" >&2
    fi
    exit 1
fi
