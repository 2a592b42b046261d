#!/usr/bin/env bash
# gpu-bench.sh: the whole GPU measurement of issue 14 in one script that needs no
# Go toolchain and no network, finishing in under 8 minutes.
#
# On a build machine (with Go and scripts/setup-ort.sh --cuda done):
#   scripts/gpu-bench.sh --make-bundle .gpu-bundle
# builds ./diffute and packs it with ONNX Runtime 1.29 and its CUDA provider
# (230 MB) into gzip parts of at most 56 MiB under .gpu-bundle/ (git-ignored), so
# that each part can be carried to the GPU machine on its own.
#
# On the GPU machine (CUDA 13 driver; a Python venv whose site-packages hold the
# NVIDIA wheels, nvidia/*/lib, as a PyTorch install does):
#   scripts/gpu-bench.sh [--bundle .gpu-bundle] [--out DIR] [--dry-run]
# reassembles the bundle under /tmp/diffute-gpu, checks the provider's sha256,
# sets LD_LIBRARY_PATH from the venv, runs diffute doctor, writes full-size
# random-weight SD 1.5 and SDXL checkpoints (diffute models make-random) under
# /tmp, and runs diffute bench on cpu and cuda:0 (one JSON line per run, with the
# peak GPU memory nvidia-smi saw). Results go to DIR (default $OUT, else
# /tmp/diffute-gpu-bench). --dry-run prints the steps without running them.
# DIFFUTE_BENCH_BUDGET_S (default 460): every run is cut to end by then;
# DIFFUTE_BENCH_FAMILIES="" skips writing the checkpoints (smoke tests);
# DIFFUTE_BENCH_MODELS (default /tmp) holds diffute-sd15/ and diffute-sdxl/;
# DIFFUTE_BENCH_DEVICE (default cuda:0) is the device measured.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
bundle="$top/.gpu-bundle"
out="${OUT:-/tmp/diffute-gpu-bench}"
dry=0
make_bundle=""
budget_s=${DIFFUTE_BENCH_BUDGET_S:-460} # every run ends by then (8 minutes less a margin)
part_size=${DIFFUTE_BUNDLE_PART:-56m} # each part plus the working tree (~6 MB) must fit one 64 MiB carry
cuda_sha256=56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
core_sha256=5715f06d8992ca8eeeddcce43df3a7d38f97d537052126f558e912cb312460ca
gpu=/tmp/diffute-gpu
models=${DIFFUTE_BENCH_MODELS:-/tmp}
dev=${DIFFUTE_BENCH_DEVICE:-cuda:0}

while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --make-bundle) make_bundle=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu-bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# step prints a command, then runs it unless --dry-run.
step() {
  echo "+ $*"
  if [ "$dry" = 0 ]; then "$@"; fi
}

if [ -n "$make_bundle" ]; then
  ort="$top/third_party/onnxruntime-cuda"
  [ "$dry" = 1 ] || [ -f "$ort/libonnxruntime_providers_cuda.so" ] || { echo "gpu-bench.sh: run scripts/setup-ort.sh --cuda first" >&2; exit 1; }
  step mkdir -p "$make_bundle"
  step rm -f "$make_bundle"/bundle.tgz.part-*
  step go build -C "$top" -o "$top/diffute" ./cmd/diffute
  echo "+ tar -C $ort -cf - libonnxruntime.so libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so -C $top diffute | gzip -1 | split -b $part_size - $make_bundle/bundle.tgz.part-"
  if [ "$dry" = 0 ]; then
    tar -C "$ort" -cf - libonnxruntime.so libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so -C "$top" diffute |
      gzip -1 | split -b "$part_size" - "$make_bundle/bundle.tgz.part-"
    ls -l "$make_bundle"
  fi
  exit 0
fi

start=$SECONDS
step mkdir -p "$out"
log="$out/gpu-bench.log"
results="$out/results.jsonl"

# 1. The bundle, reassembled (once per machine).
if [ "$dry" = 1 ] || ! { [ -f "$gpu/libonnxruntime_providers_cuda.so" ] && echo "$cuda_sha256  $gpu/libonnxruntime_providers_cuda.so" | sha256sum -c --status; }; then
  echo "+ cat $bundle/bundle.tgz.part-* | tar -xzf - -C $gpu"
  if [ "$dry" = 0 ]; then
    compgen -G "$bundle/bundle.tgz.part-*" >/dev/null || { echo "gpu-bench.sh: no $bundle/bundle.tgz.part-* (make them with --make-bundle)" >&2; exit 1; }
    mkdir -p "$gpu"
    cat "$bundle"/bundle.tgz.part-* | tar -xzf - -C "$gpu"
  fi
fi
echo "+ sha256sum -c (libonnxruntime.so, libonnxruntime_providers_cuda.so)"
if [ "$dry" = 0 ]; then
  printf '%s  %s\n%s  %s\n' "$core_sha256" "$gpu/libonnxruntime.so" "$cuda_sha256" "$gpu/libonnxruntime_providers_cuda.so" | sha256sum -c --quiet
fi
diffute="$gpu/diffute"
export DIFFUTE_ORT_LIB="$gpu/libonnxruntime.so"

# 2. CUDA 13 libraries from the Python environment's NVIDIA wheels.
site=""
for py in "${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}" /opt/venv/bin/python "$HOME/venv/bin/python" "$HOME/.venv/bin/python" python3; do
  if [ -z "$py" ] || ! command -v "$py" >/dev/null 2>&1; then continue; fi
  if s=$("$py" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null); then site=$s; break; fi
done
if [ "$dry" = 1 ] && [ -z "$site" ]; then site=/path/to/venv/lib/python3.X/site-packages; fi
if [ -n "$site" ]; then
  libs=$(find "$site/nvidia" -mindepth 2 -maxdepth 2 -type d -name lib 2>/dev/null | sort | paste -sd: -) || libs=""
  export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export DIFFUTE_CUDA_LIBS="$site"
  echo "+ export LD_LIBRARY_PATH=$site/nvidia/*/lib:… DIFFUTE_CUDA_LIBS=$site"
else
  echo "gpu-bench.sh: no Python environment with NVIDIA wheels found; relying on LD_LIBRARY_PATH and the system" >&2
fi

# 3. What the machine has.
if command -v nvidia-smi >/dev/null 2>&1; then step nvidia-smi -L; fi
if [ "$dry" = 0 ]; then
  "$diffute" doctor | tee "$log"
else
  echo "+ $diffute doctor | tee $log"
fi

# 4. Full-size random-weight checkpoints (speed does not depend on the weights).
for fam in ${DIFFUTE_BENCH_FAMILIES-sd15 sdxl}; do
  if [ "$dry" = 1 ] || [ ! -f "$models/diffute-$fam/model_index.json" ]; then
    step rm -rf "$models/diffute-$fam"
    step "$diffute" models make-random --family "$fam" --out "$models/diffute-$fam"
  fi
done

# bench runs one diffute bench with a time limit, sampling the GPU's memory, and
# appends {"name":…, "peak_gpu_mib":…, …the bench result…} to results.jsonl for
# each case it measured (a run cut short keeps the cases it finished, then an
# {"name":…, "exit":…} line).
bench() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget_s - (SECONDS - start)))
  if [ "$left" -lt 15 ]; then
    echo "skip $name: past the ${budget_s}s budget" | tee -a "$log"
    return 0
  fi
  if [ "$limit" -gt "$left" ]; then limit=$left; fi
  echo "+ timeout $limit $diffute bench $* # $name"
  [ "$dry" = 1 ] && return 0
  local mem="$out/$name.mem" lines="$out/$name.jsonl" sampler=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$mem" 2>/dev/null &
    sampler=$!
  fi
  local rc=0
  timeout "$limit" "$diffute" bench "$@" >"$lines" 2>>"$log" || rc=$?
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  local peak
  peak=$(sort -n "$mem" 2>/dev/null | tail -1) || peak=""
  while IFS= read -r line; do
    [ -n "$line" ] && echo "{\"name\":\"$name\",\"peak_gpu_mib\":${peak:-null},${line#\{}"
  done <"$lines" | tee -a "$results"
  if [ "$rc" != 0 ]; then
    echo "{\"name\":\"$name\",\"exit\":$rc,\"peak_gpu_mib\":${peak:-null}}" | tee -a "$results"
    tail -1 "$log"
  fi
}

# 5. The measurements on cuda:0. Each model is loaded once per graph and every
# shape of the issue measured on that load (--case SIZE/STEPS/IMAGES[/GUIDANCE]):
# SD 1.5 512² 50 steps and SDXL 1024² 30 steps at batch 1 and 4, and SDXL-Turbo's
# shape (SDXL at 512², no guidance) at 1 and 4 steps. The graphs, side by side:
# fused fp16 (the default on CUDA: MultiHeadAttention, GroupNorm, BiasSplitGelu),
# fp16 with standard operators, and the plain fp32 graph. The default comes
# first, then batching across requests, then the slower graphs, so a short
# budget loses the least.
# A 64 GiB UNet budget: every batch of a case is one UNet call whatever the
# graph (the default 4 GiB splits the plain fp32 SDXL batch of 4; unet_batches
# says how many calls a case took).
budget=(--max-batch-bytes 68719476736)
sd15_cases=(--case 512/50/1 --case 512/50/4)
sdxl_cases=(--case 1024/30/1 --case 1024/30/4 --case 512/1/1/0 --case 512/4/1/0 --case 512/1/4/0 --case 512/4/4/0)
bench cuda7-bad-input 30 --model "$models/diffute-sd15" --device cuda:7 --case 512/1/1
bench sd15-fused-fp16 90 --model "$models/diffute-sd15" --device "$dev" "${budget[@]}" --precision fp16 "${sd15_cases[@]}"
bench sdxl-fused-fp16 120 --model "$models/diffute-sdxl" --device "$dev" "${budget[@]}" --precision fp16 "${sdxl_cases[@]}"
# What the fused fp16 graph changes against the plain fp32 one on this GPU
# (check_max_rel_diff of the final latents): the CUDA kernels' numbers.
bench sd15-check 60 --model "$models/diffute-sd15" --device "$dev" "${budget[@]}" --precision fp16 --check --case 512/4/1
bench sdxl-check 90 --model "$models/diffute-sdxl" --device "$dev" "${budget[@]}" --precision fp16 --check --case 1024/4/1 --case 512/1/1/0
# Batching across requests: 8 one-image SDXL-Turbo requests at once, sharing
# UNet batches or each alone.
bench turbo-8-requests-batched 60 --model "$models/diffute-sdxl" --device "$dev" "${budget[@]}" --requests 8 --batch-requests --case 512/1/1/0
bench turbo-8-requests-alone 60 --model "$models/diffute-sdxl" --device "$dev" "${budget[@]}" --requests 8 --case 512/1/1/0
# NHWC where it pays: the provider's layout pass turns the convolutions NHWC
# around the NHWC GroupNorm kernels.
bench sdxl-fused-fp16-nhwc 90 --model "$models/diffute-sdxl" --device "$dev" "${budget[@]}" --precision fp16 --cuda-option prefer_nhwc=1 --case 1024/30/1 --case 512/1/1/0
bench sd15-fp16 90 --model "$models/diffute-sd15" --device "$dev" "${budget[@]}" --precision fp16 --fused=false "${sd15_cases[@]}"
bench sdxl-fp16 120 --model "$models/diffute-sdxl" --device "$dev" "${budget[@]}" --precision fp16 --fused=false "${sdxl_cases[@]}"
bench sd15-fp32 90 --model "$models/diffute-sd15" --device "$dev" "${budget[@]}" --precision fp32 --fused=false "${sd15_cases[@]}"
bench sdxl-fp32 150 --model "$models/diffute-sdxl" --device "$dev" "${budget[@]}" --precision fp32 --fused=false "${sdxl_cases[@]}"

# 6. /metrics of a serve on cuda:0 lists the GPU's memory (diffute_gpu_memory_*).
if [ $((budget_s - (SECONDS - start))) -ge 30 ]; then
  echo "+ $diffute serve --device $dev … & curl /metrics > $out/metrics.txt"
  if [ "$dry" = 0 ]; then
    DIFFUTE_SECRET_KEY=$(head -c 32 /dev/urandom | base64) timeout 25 "$diffute" serve --addr 127.0.0.1:18181 \
      --data-dir /tmp/diffute-serve --device "$dev" --workers 1 --models "sd15=$models/diffute-sd15" >>"$log" 2>&1 &
    srv=$!
    for _ in $(seq 60); do
      if curl -sf http://127.0.0.1:18181/metrics -o "$out/metrics.txt" 2>/dev/null; then break; fi
      sleep 0.3
    done
    grep -E '^diffute_(gpu_memory|build_info)' "$out/metrics.txt" 2>/dev/null | tee -a "$log" ||
      echo "no GPU series in /metrics" | tee -a "$log"
    kill "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
  fi
fi
if [ "$dry" = 0 ]; then
  echo "done in $((SECONDS - start)) s; results in $results" | tee -a "$log"
fi
