#!/usr/bin/env bash
# lint.sh runs golangci-lint with the repository's .golangci.yaml, installing the
# pinned version from the Go module proxy when it is missing (about 3 minutes
# cold on two cores; the binary lands in $(go env GOPATH)/bin).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
version=v2.15.0
bin="$(go env GOPATH)/bin/golangci-lint"
if ! "$bin" version 2>/dev/null | grep -q "version ${version#v} "; then
  echo "lint.sh: installing golangci-lint $version" >&2
  go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
fi
exec "$bin" run ./...
