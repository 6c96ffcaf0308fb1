#!/usr/bin/env bash
# bench/gpu_check.sh: is this checkout ready for a GPU? (issue #41, item 5)
#
#   bench/gpu_check.sh [full|smallest]            # or GPU_CHECK_SIZE=full|smallest
#
# Three steps on the device (CUDA when torch sees one, else the CPU; GPU_CHECK_DEVICE=cuda|cpu to choose):
#   epoch            bench/bench_epoch.py: seconds per ResNet20 (x1, BatchNorm) CIFAR-10-shaped epoch through
#                    bench/gpu_data.py; on CUDA a full 50,000-image epoch in bf16 (and, full size, last of
#                    all, again through torch.compile: epoch_compile); on the CPU a float32 slice, scaled up
#   weight_matching  bench/bench_weight_matching.py with the cost matrices on the device: ResNet20 rows (x4,
#                    x1 at size smallest, checked against the NumPy port: the same permutation or the step
#                    fails) and torchvision's ResNet50 (traced spec)
#   notebooks        every notebook at the smoke profile with `-p device <device>`, from an empty model cache,
#                    so that every model is trained on the device; then models_on_device checks each cache
#                    entry's recorded device
# At size `smallest` each step shrinks (notebook 06 only, a 256-image epoch slice, one ResNet20 x1 row):
# about half a minute on one CPU thread. `full` on one H100 is meant to fit in 8 minutes (on one thread of
# a busy 2-core CPU it took 6.5 to 9.5, bench/gpu_check_cpu.md); the steps share a wall-clock budget
# (GPU_CHECK_BUDGET seconds from the start, default 480 full / 240 smallest), the two benchmarks are capped
# at 2 minutes each, and a step still running when its time is up is stopped and fails; a step with no
# time left is not run and fails.
#
# Results: GPU_CHECK_RESULTS (default bench/gpu_check_<device>.md): device name, torch version, date,
# commit, each step's seconds and pass/fail, and its headline numbers. Everything else goes to
# GPU_CHECK_OUT (default build/gpu-check/<device>/: logs/, figures/ via LMC_FIGURES_DIR, cache/ via
# LMC_CACHE_DIR, emptied first, so it must be empty or a previous check's), never to figures/ or your model
# cache; the runner keeps its executed notebooks in build/executed/smoke+<hash of the device override>/
# (git-ignored). Exit status 0 when every step passed, 1 when one failed, 2 when the requested device is
# not there (or the size or GPU_CHECK_OUT is wrong).
# Other settings: GPU_CHECK_THREADS (torch/OpenMP threads; default $OMP_NUM_THREADS, else 2),
# GPU_CHECK_NOTEBOOKS (which notebooks, e.g. "00 06"), GPU_CHECK_PYTHON (default .venv/bin/python, else
# python). Datasets come from LMC_DATA_DIR as for any run (MNIST and FashionMNIST at the smoke profile).
set -euo pipefail

START=$SECONDS  # the budget counts from here
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZE="${1:-${GPU_CHECK_SIZE:-full}}"
case "$SIZE" in
  full|smallest) ;;
  *) echo "gpu_check.sh: size must be full or smallest, not '$SIZE'" >&2; exit 2 ;;
esac
if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then PY="$GPU_CHECK_PYTHON"
elif [[ -x .venv/bin/python ]]; then PY="$ROOT/.venv/bin/python"
else PY=python
fi
THREADS="${GPU_CHECK_THREADS:-${OMP_NUM_THREADS:-2}}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
if [[ "$SIZE" == full ]]; then BUDGET="${GPU_CHECK_BUDGET:-480}"; else BUDGET="${GPU_CHECK_BUDGET:-240}"; fi

# --- the device -----------------------------------------------------------------------------------------
PROBE="$(GPU_CHECK_DEVICE="${GPU_CHECK_DEVICE:-auto}" "$PY" - <<'EOF'
import os, platform, torch
from lmc_utils.run.provenance import cpu_model
want = os.environ["GPU_CHECK_DEVICE"]
cuda = torch.cuda.is_available()
dev = ("cuda" if cuda else "cpu") if want == "auto" else want
if dev not in ("cpu", "cuda"):
    print(f"error=GPU_CHECK_DEVICE must be auto, cuda or cpu, not {want!r}")
elif dev == "cuda" and not cuda:
    print("error=CUDA was asked for (GPU_CHECK_DEVICE=cuda) but torch sees no GPU")
else:
    print(f"device={dev}")
    if dev == "cuda":
        p = torch.cuda.get_device_properties(0)
        print(f"name={p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, "
              f"cuDNN {torch.backends.cudnn.version()}, {torch.cuda.device_count()} GPU(s) visible")
    else:
        print(f"name={cpu_model()}, {os.cpu_count()} logical CPUs")
print(f"torch={torch.__version__}")
print(f"python={platform.python_version()}")
print(f"host_cpu={cpu_model()}")
EOF
)"
field() { sed -n "s/^$1=//p" <<<"$PROBE" | head -n 1; }
if [[ -n "$(field error)" ]]; then
  echo "gpu_check.sh: $(field error)" >&2
  exit 2
fi
DEV="$(field device)"
OUT="${GPU_CHECK_OUT:-$ROOT/build/gpu-check/$DEV}"
RESULTS="${GPU_CHECK_RESULTS:-$ROOT/bench/gpu_check_$DEV.md}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# The folder is emptied of a previous check's outputs, so it must be empty or one of ours (never the
# checkout itself, whose figures/ and cache/ those names would be).
if [[ -n "$(ls -A "$OUT")" && ! -f "$OUT/.gpu-check" ]]; then
  echo "gpu_check.sh: $OUT is neither empty nor a previous check's folder; choose another GPU_CHECK_OUT" >&2
  exit 2
fi
touch "$OUT/.gpu-check"
rm -rf "$OUT/logs" "$OUT/figures" "$OUT/cache" "$OUT/weight_matching.md"
mkdir -p "$OUT/logs" "$(dirname "$RESULTS")"
export LMC_FIGURES_DIR="$OUT/figures" LMC_CACHE_DIR="$OUT/cache"
SHOW_OUT="${OUT#"$ROOT"/}"  # as shown in the results: relative to the checkout when inside it
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ]]; then COMMIT="$COMMIT (uncommitted changes)"; fi
echo "gpu_check.sh: size $SIZE on $DEV ($(field name)); torch $(field torch); $THREADS thread(s); budget ${BUDGET} s"
echo "  logs, figures and model cache in $OUT/; results to $RESULTS"

# --- steps ----------------------------------------------------------------------------------------------
ROWS=()      # markdown table rows
LAST_STATUS="" LAST_SECONDS=""
DETAILS=()   # markdown sections
FAILED=0

# run_step NAME CAP DESCRIPTION CMD...: run CMD (its output to logs/NAME.log and, indented, here) for at
# most CAP seconds (0: no cap) and never past the budget; record seconds and pass/fail.
run_step() {
  local name="$1" cap="$2" what="$3"; shift 3
  local left=$((BUDGET - (SECONDS - START)))
  local log="$OUT/logs/$name.log" limit t0 rc status
  if ((left < 5)); then
    LAST_STATUS="FAIL: not run, the ${BUDGET} s budget was spent" LAST_SECONDS=""
    echo "== $name: $LAST_STATUS"
    ROWS+=("| $name | $what | | $LAST_STATUS |")
    FAILED=1
    return 0
  fi
  limit=$left
  if ((cap > 0 && cap < left)); then limit=$cap; fi
  echo "== $name: $what (at most ${limit} s)"
  t0=$(date +%s.%N)
  rc=0
  # SIGINT first (the runner stops a notebook cleanly on it), SIGKILL 20 s later
  timeout --signal=INT --kill-after=20 "$limit" "$@" >"$log" 2>&1 || rc=$?
  LAST_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if ((rc == 0)); then status=pass
  elif ((rc == 124 || rc == 137)); then
    if ((limit < left)); then status="FAIL: stopped after its ${limit} s"
    else status="FAIL: stopped when the ${BUDGET} s budget was spent"; fi
  else status="FAIL: exit status $rc (see logs/$name.log)"
  fi
  grep -v 'Executing:' "$log" | tail -n 15 | sed 's/^/    /' || true
  echo "   -> $status, ${LAST_SECONDS} s"
  LAST_STATUS="$status"
  ROWS+=("| $name | $what | $LAST_SECONDS | $status |")
  if [[ "$status" != pass ]]; then FAILED=1; fi
}

# The two benchmarks first (bounded: each capped), then the notebooks with the rest of the budget, then
# (CUDA, full size) the compiled epoch, the step most likely to need what is left.

# (b) seconds per ResNet20 epoch through the GPU data path
if [[ "$DEV" == cuda ]]; then
  if [[ "$SIZE" == full ]]; then EPOCH_ARGS=(--device cuda); else EPOCH_ARGS=(--device cuda --examples 5000 --epochs 1); fi
else
  if [[ "$SIZE" == full ]]; then EPOCH_ARGS=(--device cpu --examples 1280 --epochs 1 --no-bf16)
  else EPOCH_ARGS=(--device cpu --examples 256 --epochs 1 --no-bf16); fi
fi
run_step epoch 120 "bench/bench_epoch.py ${EPOCH_ARGS[*]}" "$PY" bench/bench_epoch.py "${EPOCH_ARGS[@]}"
DETAILS+=("## epoch" "" '```' "$(grep -E '^(torch |ResNet20 )' "$OUT/logs/epoch.log" 2>/dev/null || true)" '```' "")

# (c) weight matching with the cost matrices on the device
if [[ "$SIZE" == full ]]; then
  if [[ "$DEV" == cuda ]]; then WM_ARGS=(--widths 4 16 --skip-port-above 4 --torchvision resnet50 --torchvision-sweeps 5)
  else WM_ARGS=(--widths 4 --torchvision resnet50 --torchvision-sweeps 3); fi
else
  WM_ARGS=(--widths 1 --torchvision)
fi
WM_WHAT="bench/bench_weight_matching.py ${WM_ARGS[*]} --device $DEV"
run_step weight_matching 120 "$WM_WHAT" \
  "$PY" bench/bench_weight_matching.py "${WM_ARGS[@]}" --device "$DEV" --out "$OUT/weight_matching.md"
if [[ "$LAST_STATUS" == pass ]] && grep -q 'different permutation' "$OUT/weight_matching.md"; then
  # on the device, weight matching must still find the NumPy port's permutation
  unset 'ROWS[${#ROWS[@]}-1]'
  ROWS+=("| weight_matching | $WM_WHAT | $LAST_SECONDS | FAIL: not the NumPy port's permutation |")
  FAILED=1
fi
if [[ -f "$OUT/weight_matching.md" ]]; then
  DETAILS+=("## weight matching (cost matrices on $DEV)" "" "$(grep -E '^\|' "$OUT/weight_matching.md")" "")
fi

# (a) notebooks at the smoke profile on the device, from an empty model cache
if [[ -n "${GPU_CHECK_NOTEBOOKS:-}" ]]; then read -r -a NOTEBOOKS <<<"$GPU_CHECK_NOTEBOOKS"
elif [[ "$SIZE" == full ]]; then NOTEBOOKS=()
else NOTEBOOKS=(06)
fi
NB_TEXT="${NOTEBOOKS[*]:-all}"
run_step notebooks 0 "notebooks ${NB_TEXT// /, } at the smoke profile, \`-p device $DEV\`, empty model cache" \
  "$PY" -m lmc_utils.run --profile smoke --threads "$THREADS" -p device "$DEV" ${NOTEBOOKS[@]+"${NOTEBOOKS[@]}"}
DETAILS+=("## notebooks" "" '```' "$(sed -n '/^notebook  *seconds  *status/,$p' "$OUT/logs/notebooks.log" 2>/dev/null \
  | sed "s|$OUT/|$SHOW_OUT/|g" || true)" '```' "")
if [[ "$LAST_STATUS" == pass ]]; then
  # every model the notebooks trained was trained on the device (the cache entry's recorded environment)
  run_step models_on_device 60 "every model the notebooks trained was trained on $DEV" \
    "$PY" - "$LMC_CACHE_DIR/models" "$DEV" <<'EOF'
import collections, sys
from pathlib import Path
from lmc_utils.core.checkpoint import load_checkpoint
folder, want = Path(sys.argv[1]), sys.argv[2]
found = collections.Counter(load_checkpoint(p)[1]["env"]["device"] for p in sorted(folder.glob("*.pt")))
print(f"{sum(found.values())} model cache entries: " + (", ".join(f"{n} trained on {d}" for d, n in found.items()) or "none"))
sys.exit(0 if found and set(found) == {want} else 1)
EOF
  DETAILS+=("Models: $(tail -n 1 "$OUT/logs/models_on_device.log" 2>/dev/null || true)" "")
fi

# (b, continued) the epoch again through torch.compile (CUDA, full size)
if [[ "$DEV" == cuda && "$SIZE" == full ]]; then
  run_step epoch_compile 0 "bench/bench_epoch.py --device cuda --compile --epochs 2" \
    "$PY" bench/bench_epoch.py --device cuda --compile --epochs 2
  DETAILS+=("## epoch with torch.compile" "" '```' \
    "$(grep -E '^(epoch 0|ResNet20 )' "$OUT/logs/epoch_compile.log" 2>/dev/null || true)" '```' "")
fi

# --- results --------------------------------------------------------------------------------------------
TOTAL=$((SECONDS - START))
VERDICT=$([[ $FAILED == 0 ]] && echo "every step passed" || echo "FAILED")
{
  echo "# GPU check: $DEV, size $SIZE"
  echo
  echo "Generated by \`bench/gpu_check.sh $SIZE\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $VERDICT in ${TOTAL} s."
  echo
  echo "- device: $DEV, $(field name)"
  echo "- torch $(field torch), Python $(field python), $THREADS torch/OpenMP thread(s), host CPU $(field host_cpu)"
  echo "- commit $COMMIT"
  echo "- logs, figures and the scratch model cache: \`$SHOW_OUT/\`"
  echo
  echo "| step | what | seconds | result |"
  echo "|---|---|---:|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  printf '%s\n' "${DETAILS[@]}"
} >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
echo "gpu_check.sh: $VERDICT in ${TOTAL} s; results in $RESULTS"
exit "$FAILED"
