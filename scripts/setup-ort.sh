#!/usr/bin/env bash
# setup-ort.sh fetches ONNX Runtime's CPU shared library (1.24.3, C API v24) from the
# npm package onnxruntime-node, checks its checksum and places it at
# third_party/onnxruntime/libonnxruntime.so.1 (git-ignored), where diffute finds it.
#
# setup-ort.sh --cuda instead fetches ONNX Runtime 1.29.0 and its CUDA 13 plugin
# execution provider from the npm packages com.github.asus4.onnxruntime@0.4.9 and
# com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 into third_party/onnxruntime-cuda/
# (git-ignored). Set DIFFUTE_NPM_PACKS to a folder that already holds the two .tgz
# files to skip the download (the GPU package is about 100 MB).
set -euo pipefail

# have FILE SHA256: FILE is there with that checksum.
have() { [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status; }

# place SRC DEST SHA256 MODE: checks SRC's checksum, then installs it as DEST
# through a temporary file, so DEST is never half-written.
place() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$3" ]; then
    echo "setup-ort.sh: checksum mismatch for $(basename "$2"): got $got, want $3" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$2")"
  install -m "$4" "$1" "$2.tmp"
  mv "$2.tmp" "$2"
}

if [ "${1:-}" = "--cuda" ]; then
  pkg_version=0.4.9
  top=$(cd "$(dirname "$0")/.." && pwd)
  dest="$top/third_party/onnxruntime-cuda"
  # file, package, sha256 (libonnxruntime_providers_shared.so is taken from the GPU
  # package, which is built with the CUDA provider; the core package's copy differs).
  files=(
    "libonnxruntime.so com.github.asus4.onnxruntime 5715f06d8992ca8eeeddcce43df3a7d38f97d537052126f558e912cb312460ca"
    "libonnxruntime_providers_cuda.so com.github.asus4.onnxruntime.linux-x64-gpu 56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037"
    "libonnxruntime_providers_shared.so com.github.asus4.onnxruntime.linux-x64-gpu c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772"
    "libonnxruntime_providers_tensorrt.so com.github.asus4.onnxruntime.linux-x64-gpu ef6071798a339038ad66c428fb1a809cf8e499bffc3b6870e4e8bc4f4c6a6320"
  )
  all_ok=1
  for entry in "${files[@]}"; do
    read -r name _ sum <<<"$entry"
    have "$dest/$name" "$sum" || all_ok=0
  done
  if [ "$all_ok" = 1 ]; then
    echo "ONNX Runtime 1.29.0 with the CUDA provider already in $dest"
    exit 0
  fi
  case "$(uname -sm)" in
    "Linux x86_64") ;;
    *) echo "setup-ort.sh: the CUDA provider is packaged here for linux/x86_64 only" >&2; exit 1 ;;
  esac
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  for pkg in com.github.asus4.onnxruntime com.github.asus4.onnxruntime.linux-x64-gpu; do
    tgz="$pkg-$pkg_version.tgz"
    if [ -n "${DIFFUTE_NPM_PACKS:-}" ] && [ -f "$DIFFUTE_NPM_PACKS/$tgz" ]; then
      cp "$DIFFUTE_NPM_PACKS/$tgz" "$work/"
    else
      (cd "$work" && npm pack --silent "$pkg@$pkg_version" >/dev/null)
    fi
    mkdir -p "$work/$pkg"
    tar -xzf "$work/$tgz" -C "$work/$pkg" package/Plugins/Linux/x64
  done
  for entry in "${files[@]}"; do
    read -r name pkg sum <<<"$entry"
    place "$work/$pkg/package/Plugins/Linux/x64/$name" "$dest/$name" "$sum" 0755
  done
  echo "ONNX Runtime 1.29.0 with the CUDA provider placed in $dest"
  echo "run diffute with --ort-lib $dest/libonnxruntime.so (or DIFFUTE_ORT_LIB); it needs CUDA 13, cuDNN 9 and an NVIDIA driver: see diffute doctor"
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: setup-ort.sh [--cuda]" >&2
  exit 2
fi
version=1.24.3
lib_sha256=92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$top/third_party/onnxruntime"
lib="$dest/libonnxruntime.so.1"

if have "$lib" "$lib_sha256"; then
  echo "ONNX Runtime $version already at $lib"
  exit 0
fi
case "$(uname -sm)" in
  "Linux x86_64") ;;
  *) echo "setup-ort.sh: only linux/x86_64 is packaged here; set DIFFUTE_ORT_LIB to your libonnxruntime" >&2; exit 1 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$work/onnxruntime-node-$version.tgz" -C "$work" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
place "$work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib" "$lib_sha256" 0644
echo "ONNX Runtime $version placed at $lib"
