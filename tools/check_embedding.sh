#!/usr/bin/env bash
# Builds Examples/MatchPhotos as an app would: against a tagged version (0.1.0) of this
# repository's HEAD, fetched by URL, taking only the AISLFDRuntime product; runs it on two
# photos, and fails if its binary links libhdf5, libpng or libjpeg.
# Needs the commands built (swift build -c release) for the model it converts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

git clone -q "$root" "$work/aislfd"
git -C "$work/aislfd" tag 0.1.0
cp -R Examples/MatchPhotos "$work/app"
rm -rf "$work/app/.build"
"$root/.build/release/aislfd-convert" Weights/lisrd.h5 "$work/lisrd.aisw" >/dev/null

AISLFD_PACKAGE_URL="file://$work/aislfd" swift build -c release --package-path "$work/app" 2>&1 | tail -1
binary="$work/app/.build/release/match-photos"
if ldd "$binary" | grep -E 'libhdf5|libpng|libjpeg'; then
    echo "check_embedding: the app links a library the runtime must not pull in" >&2
    exit 1
fi
"$binary" "$work/lisrd.aisw" Tests/Fixtures/eval/hpatches-like/v_coffee/1.ppm Tests/Fixtures/eval/hpatches-like/v_coffee/2.ppm
