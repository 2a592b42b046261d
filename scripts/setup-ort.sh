#!/usr/bin/env bash
# setup-ort.sh fetches ONNX Runtime's CPU shared library (1.24.3, C API v24) from the
# npm package onnxruntime-node, checks its checksum and places it at
# third_party/onnxruntime/libonnxruntime.so.1 (git-ignored), where diffute finds it.
set -euo pipefail
version=1.24.3
lib_sha256=92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$top/third_party/onnxruntime"
lib="$dest/libonnxruntime.so.1"

if [ -f "$lib" ] && echo "$lib_sha256  $lib" | sha256sum -c --status; then
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
got=$(sha256sum "$work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | cut -d' ' -f1)
if [ "$got" != "$lib_sha256" ]; then
  echo "setup-ort.sh: checksum mismatch for libonnxruntime.so.1: got $got, want $lib_sha256" >&2
  exit 1
fi
mkdir -p "$dest"
install -m 0644 "$work/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "ONNX Runtime $version placed at $lib"
