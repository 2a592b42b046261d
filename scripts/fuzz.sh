#!/usr/bin/env bash
# fuzz.sh runs each fuzz target for a bounded time (FUZZTIME, default 15s). The
# seed corpora in each package's testdata/fuzz run in the ordinary `go test` too;
# this explores beyond them. A failure leaves its input in testdata/fuzz/<Target>/
# for `go test -run <Target>/<file>` to replay; commit it with the fix.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fuzztime=${FUZZTIME:-15s}
# Minimising each new interesting input may take 60 s by default, which in a
# bounded run can leave the fuzzer doing nothing else; 2 s keeps it exploring.
minimize=${FUZZMINIMIZETIME:-2s}

targets=(
  "./httpapi FuzzDecodeInferenceRequest" # request decoder and validator
  "./media FuzzVerifyMediaURL"           # signed media URL verifier
  "./clip FuzzEncode"                    # tokenizer
  "./clip FuzzSplit"                     # tokenizer's pre-split pattern
  ". FuzzCheckWebhookURL"                # webhook URL check at submission
  "./webhook FuzzCheckAddr"              # webhook dial-time address guard
  "./checkpoint FuzzSingleFileKeys"      # single-file checkpoint key mapping
  "./safetensors FuzzParse"              # safetensors header validation
)
# Go's fuzzer can end a bounded run with "context deadline exceeded" when the
# time runs out while a worker is still minimising a new input; no input fails
# and none is written to testdata/fuzz. Such a run is repeated once; a run
# that finds a failing input always fails.
fuzz_once() {
  local pkg=$1 name=$2 out
  out=$(mktemp)
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg" 2>&1 | tee "$out"; then
    rm -f "$out"; return 0
  fi
  if grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
    rm -f "$out"; return 75
  fi
  rm -f "$out"; return 1
}
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== fuzz $name ($pkg, $fuzztime)"
  rc=0; fuzz_once "$pkg" "$name" || rc=$?
  if [ "$rc" = 75 ]; then
    echo "fuzz.sh: $name stopped on the fuzzer's own deadline with no failing input; running it once more"
    rc=0; fuzz_once "$pkg" "$name" || rc=$?
  fi
  [ "$rc" = 0 ] || exit 1
done
