#!/usr/bin/env bash
# test.sh runs Diffute's whole test suite. It installs what the tests need first
# (ONNX Runtime's library via setup-ort.sh), so it works on a fresh machine.
# With CI=true, a test whose dependency is missing fails instead of skipping.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/setup-ort.sh"
# ONNX Runtime 1.29 with its CUDA plugin provider: the CPU suite checks both
# libraries (the provider's registration and its errors run without a GPU).
"$top/scripts/setup-ort.sh" --cuda
"$top/scripts/s3-test-server.sh" install
# A throwaway PostgreSQL for the store suite, the end-to-end and multi-process
# tests on PostgreSQL; stopped when the tests end.
if [ -z "${DIFFUTE_TEST_DATABASE_URL:-}" ]; then
  "$top/scripts/pg-test-server.sh" install
  eval "$("$top/scripts/pg-test-server.sh" start)"
  trap '"$top/scripts/pg-test-server.sh" stop "$DIFFUTE_TEST_PG_DIR"' EXIT
fi
# Headless Chromium for the web console's browser test (cmd/diffute/console_test.go).
if ! command -v chromium >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq chromium) || echo "test.sh: could not install chromium; the browser test will fail under CI=true"
fi
export DIFFUTE_ORT_LIB="$top/third_party/onnxruntime/libonnxruntime.so.1"

echo "== go vet"
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== golangci-lint (.golangci.yaml says why each linter that is off is off)"
"$top/scripts/lint.sh"

# Every package runs under the race detector except the end-to-end suite in
# cmd/diffute: it drives real processes, a browser and full-size images through the
# pipeline, which the detector slows tenfold; the concurrency it exercises is
# raced in the packages that own it (queue, store, httpapi, onnx, webhook, …).
echo "== go test (race detector on)"
go test -race -count=1 -timeout 20m $(go list ./... | grep -v '/cmd/diffute$')
# The engine's suite again on ONNX Runtime 1.29, the library GPU workers load
# (scripts/setup-ort.sh --cuda), through its CPU provider: the built graphs, the
# fused attention and the fixtures must hold on both versions.
echo "== go test ./onnx ./sdgraph ./tinymodel on ONNX Runtime 1.29"
DIFFUTE_ORT_LIB="$top/third_party/onnxruntime-cuda/libonnxruntime.so" \
  go test -count=1 -timeout 10m ./onnx ./sdgraph ./tinymodel
echo "== go test ./cmd/diffute (end to end)"
go test -count=1 -timeout 20m ./cmd/diffute

# The GPU measurement script end to end on the CPU with the tiny models: the
# bundle, its reassembly and checksums, doctor, every bench run and the JSON it
# writes, so a GPU machine's few minutes are never lost to a broken script.
echo "== scripts/gpu-bench.sh on the CPU (tiny models)"
smoke=$(mktemp -d)
"$top/scripts/gpu-bench.sh" --make-bundle "$smoke/bundle" >/dev/null
go run ./cmd/diffute models make-tiny --dir "$smoke/tiny" >/dev/null
ln -s "$smoke/tiny/diffute/tiny-sd" "$smoke/diffute-sd15"
ln -s "$smoke/tiny/diffute/tiny-sdxl" "$smoke/diffute-sdxl"
rm -rf /tmp/diffute-gpu
DIFFUTE_BENCH_FAMILIES="" DIFFUTE_BENCH_MODELS="$smoke" DIFFUTE_BENCH_DEVICE=cpu \
  "$top/scripts/gpu-bench.sh" --bundle "$smoke/bundle" --out "$smoke/out" >"$smoke/log" 2>&1 ||
  { tail -20 "$smoke/log"; exit 1; }
# One line per measured shape (32), and only the cuda:7 run fails, as it must.
lines=$(grep -c '"name"' "$smoke/out/results.jsonl")
failed=$(grep '"exit"' "$smoke/out/results.jsonl" | grep -vc '"cuda7-bad-input"' || true)
if [ "$lines" != 32 ] || [ "$failed" != 0 ] || ! grep -q '"check_max_rel_diff"' "$smoke/out/results.jsonl"; then
  echo "gpu-bench.sh smoke: $lines results, $failed failed runs:"; tail -20 "$smoke/log"; exit 1
fi
rm -rf "$smoke" /tmp/diffute-gpu "$top/diffute"

echo "== fuzz (each target for ${FUZZTIME:-15s})"
"$top/scripts/fuzz.sh"

echo "== govulncheck"
"$top/scripts/vulncheck.sh"
