#!/usr/bin/env bash
# One prepared GPU benchmark run: the full pre-training step on the JAX backend vs PyTorch.
#
#   bash bench/gpu.sh [WHEEL_DIR]          (from the repository root or anywhere)
#
# For a GPU machine that has PyTorch and JAX but no TensorFlow and no network. Runs, in this order
# (most important first, each configuration in its own process, bf16, SGD, synthetic 30 s tracks
# held on the GPU with random crops drawn inside the step):
#   1. batch 256, VICReg (projector 8192-8192-8192): JAX with and without AudioAugment,
#      torch eager and torch.compile (no augmentation; the reference of the issue's targets);
#   2. batch 256, NT-Xent (projector 512-128): the same;
#   3. batch 768, VICReg and NT-Xent: JAX with and without augmentation, torch eager (memory);
#   4. if time is left, batch 256 VICReg without the collapse monitors, and with 10 steps per
#      compiled execution.
# and stops starting new configurations after BUDGET_S seconds (default 330), so the whole run
# stays under 6 minutes. Every configuration appends one JSON line to $OUT/train_step_gpu.jsonl
# (OUT defaults to bench/results); a summary table is printed at the end.
#
# Keras, and what it needs that the machine lacks (namex, optree) plus gin-config (imported by
# mssl_tf), are installed from wheels in WHEEL_DIR (argument, or $MSSL_WHEELS, default
# bench/wheels, which is not committed). Fill it on a machine with network, for the GPU machine's
# Python (3.12 here):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       --platform manylinux_2_28_x86_64 -d bench/wheels keras==3.15.1 namex optree gin-config
# mssl_tf itself is used from this checkout through PYTHONPATH (no install, no TensorFlow).
#
# Environment: MSSL_BENCH_TINY=1 shrinks everything (small SampleCNN, batches 4/8, 2 steps) to
# check this script's logic on a CPU; TORCH_MODES overrides the torch modes of steps 1-2
# ("eager,compile"); AUGMENT overrides --augment-both (e.g. --no-augment); BUDGET_S the budget;
# PYTHON picks the interpreter (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WHEELS="${1:-${MSSL_WHEELS:-$ROOT/bench/wheels}}"
OUT_DIR="${OUT:-$ROOT/bench/results}"
BUDGET_S="${BUDGET_S:-330}"
TORCH_MODES="${TORCH_MODES:-eager,compile}"
AUGMENT="${AUGMENT:---augment-both}"
mkdir -p "$OUT_DIR"
RESULTS="$OUT_DIR/train_step_gpu.jsonl"
: > "$RESULTS"

if ! "$PY" -c "import keras, gin" 2>/dev/null; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "gpu.sh: keras/gin-config are not importable and $WHEELS holds no wheels." >&2
    echo "Fill it with the 'pip download' command at the top of bench/gpu.sh." >&2
    exit 2
  fi
  SITE="$(mktemp -d /tmp/mssl_site.XXXXXX)"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$WHEELS"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# JAX may use most of the card (batch 768 must fit); torch runs in other processes, one at a time.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}"

if [[ "${MSSL_BENCH_TINY:-0}" == "1" ]]; then
  SIZE=(--widths 8,8,8,8 --rep-dim 16 --tracks 2 --track-seconds 0.2 --steps 2 --warmup 1)
  PROJ_VICREG=(--projector 64-64-64)
  PROJ_NTXENT=(--projector 16-8)
  SMALL=4; LARGE=8
else
  SIZE=(--tracks 64 --track-seconds 30 --steps 30 --warmup 5)
  PROJ_VICREG=()
  PROJ_NTXENT=()
  SMALL=256; LARGE=768
fi
START=$(date +%s)

remaining() {  # seconds of the budget left (at least 1)
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  (( left > 0 )) && echo "$left" || echo 1
}

step() {  # step OBJECTIVE BATCH TORCH_MODES [extra args...]
  local objective="$1" batch="$2" torch="$3"; shift 3
  local proj=("${PROJ_VICREG[@]}")
  [[ "$objective" == "ntxent" ]] && proj=("${PROJ_NTXENT[@]}")
  local left
  left="$(remaining)"
  if (( left <= 1 )); then
    echo "gpu.sh: budget spent, skipping $objective batch $batch" >&2
    return 0
  fi
  # A configuration that fails (e.g. out of memory) is recorded with its error; go on.
  "$PY" "$ROOT/bench/train_step.py" --backend jax --objective "$objective" --batch "$batch" \
    --precision mixed_bfloat16 "$AUGMENT" ${torch:+--torch "$torch"} "${SIZE[@]}" \
    "${proj[@]}" --budget-s "$left" --job-timeout-s "$(( left + 60 ))" \
    --json-out "$RESULTS" "$@" || true
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
step vicreg "$SMALL" "$TORCH_MODES"
step ntxent "$SMALL" "$TORCH_MODES"
step vicreg "$LARGE" eager
step ntxent "$LARGE" eager
# If time is left: what the per-step collapse monitors (an eigh of the 512 x 512 Gram matrix)
# and one dispatch per step cost, on the step of the issue's target.
step vicreg "$SMALL" "" --no-monitors
step vicreg "$SMALL" "" --steps-per-execution 10

"$PY" - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print(f"{len(rows)} configurations -> {sys.argv[1]}")
print(f"{'impl':14} {'objective':9} {'batch':>5} {'aug':>5} {'pairs/s':>9} {'step ms':>8} "
      f"{'GB':>6} {'x eager':>7} {'x compile':>9}")
for r in rows:
    if "error" in r:
        print(f"{r['impl']:14} {r['objective']:9} {r['batch']:>5} {str(r.get('augment')):>5} "
              f"FAILED: {r['error'].strip().splitlines()[-1][:80] if r['error'].strip() else ''}")
        continue
    print(f"{r['impl']:14} {r['objective']:9} {r['batch']:>5} {str(r['augment']):>5} "
          f"{r['pairs_per_s']:>9.1f} {r['step_ms']:>8.1f} {str(r.get('peak_mem_gb')):>6} "
          f"{str(r.get('ratio_vs_torch_eager', '')):>7} {str(r.get('ratio_vs_torch_compile', '')):>9}")
EOF
echo "gpu.sh: done in $(( $(date +%s) - START )) s"
