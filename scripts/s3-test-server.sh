#!/usr/bin/env bash
# s3-test-server.sh manages versitygw, the real S3-compatible server (Apache-2.0) that
# the s3 package's tests run against. It is a tool, not a dependency of Diffute, so it
# is installed with `go install` and kept out of go.mod.
#
#   scripts/s3-test-server.sh install   install the pinned version (quick when present)
#   scripts/s3-test-server.sh path      print the binary the tests will use
#
# The tests find the binary through DIFFUTE_VERSITYGW, then $(go env GOBIN) or
# $(go env GOPATH)/bin, then PATH; `install` places it in the second.
set -euo pipefail
version=v1.8.0
module=github.com/versity/versitygw/cmd/versitygw

bindir() {
  local gobin
  gobin=$(go env GOBIN)
  if [ -n "$gobin" ]; then echo "$gobin"; else echo "$(go env GOPATH | cut -d: -f1)/bin"; fi
}

installed_version() {
  # `go version -m` reads the module version the binary was built from, so a
  # different versitygw already on disk is replaced rather than trusted.
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" { print $3 }'
}

cmd=${1:-}
case "$cmd" in
  install)
    bin="$(bindir)/versitygw"
    if [ -x "$bin" ] && [ "$(installed_version "$bin")" = "$version" ]; then
      echo "versitygw $version already at $bin"
      exit 0
    fi
    echo "installing versitygw $version (about a minute on a cold build cache)"
    go install "$module@$version"
    echo "versitygw $version installed at $bin"
    ;;
  path)
    if [ -n "${DIFFUTE_VERSITYGW:-}" ]; then echo "$DIFFUTE_VERSITYGW"; exit 0; fi
    bin="$(bindir)/versitygw"
    if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
    command -v versitygw || { echo "versitygw not found; run $0 install" >&2; exit 1; }
    ;;
  *)
    echo "usage: $0 install|path" >&2
    exit 2
    ;;
esac
