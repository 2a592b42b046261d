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
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== fuzz $name ($pkg, $fuzztime)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg"
done
