#!/usr/bin/env bash
# test.sh runs Diffute's whole test suite. It installs what the tests need first
# (ONNX Runtime's library via setup-ort.sh), so it works on a fresh machine.
# With CI=true, a test whose dependency is missing fails instead of skipping.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/setup-ort.sh"
"$top/scripts/s3-test-server.sh" install
# A throwaway PostgreSQL for the store suite, the end-to-end and multi-process
# tests on PostgreSQL; stopped when the tests end.
if [ -z "${DIFFUTE_TEST_DATABASE_URL:-}" ]; then
  "$top/scripts/pg-test-server.sh" install
  eval "$("$top/scripts/pg-test-server.sh" start)"
  trap '"$top/scripts/pg-test-server.sh" stop "$DIFFUTE_TEST_PG_DIR"' EXIT
fi
export DIFFUTE_ORT_LIB="$top/third_party/onnxruntime/libonnxruntime.so.1"

echo "== go vet"
go vet ./...
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go test (race detector on)"
go test -race -count=1 -timeout 20m ./...
