#!/usr/bin/env bash
# The prepared GPU run: one call on a GPU machine writes gpu.md and the tables and figures beside it.
#
#   bash benchmarks/gpu_suite.sh            # on one GPU (about 9 minutes): the figures for docs/benchmarks
#   bash benchmarks/gpu_suite.sh --smoke    # on the CPU, tiny sizes, under a minute (the test suite runs it)
#
# In order of priority, each section with its own time limit, inside one deadline
# for the whole run (DEADLINE seconds, default 540; a section that no longer fits
# is skipped and the report says so, so the run always ends with its report):
#
# 1. the machine, and the GPU-only tests;
# 2. the standard preset on the CryoGEN paper's sphere and prism protocols
#    (PSNR/SSIM beside the paper's Table 1), SHAPE_BUDGET seconds of training a
#    shape (default 90);
# 3. the throughput benchmark with mixed precision: training subtomograms/s and
#    achieved FLOP/s against the GPU's bf16 matmul rate measured in the same run;
#    inference voxels/s and peak GPU memory on a 1000x1000x300 tomogram;
# 4. the cell scenes of benchmarks/versus.py (input, oracle low-pass, ours with
#    the default quick preset), VERSUS_BUDGET seconds of training a scene
#    (default 40): the same objective as on a CPU, with the steps a GPU gives;
# 5. the throughput benchmark with mixed precision off.
#
# OUT is the folder written (default docs/benchmarks); run.log there holds every
# section's output.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python

SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=${OUT:-docs/benchmarks}
mkdir -p "$OUT"
REPORT="$OUT/gpu.md"
TMP="$REPORT.tmp"
LOG="$OUT/run.log"
DEADLINE=${DEADLINE:-540}
START=$SECONDS
: > "$LOG"

# section NAME NEED CAP COMMAND...: runs COMMAND (output to run.log) for at most CAP
# seconds, or skips it when less than NEED seconds are left before the deadline.
section() {
    local name=$1 need=$2 cap=$3 left rc t0
    shift 3
    left=$((DEADLINE - (SECONDS - START)))
    if ((left < need)); then
        echo "_Skipped: ${name} (${left} s left of the run's ${DEADLINE}, it needs about ${need})._" >> "$TMP"
        echo >> "$TMP"
        return 0
    fi
    ((cap > left)) && cap=$left
    t0=$SECONDS
    echo "=== ${name} (at most ${cap} s)" >> "$LOG"
    timeout --kill-after=10 "$cap" "$@" >> "$LOG" 2>&1
    rc=$?
    echo "=== ${name}: exit ${rc} after $((SECONDS - t0)) s" >> "$LOG"
    if ((rc != 0)); then
        echo "_${name}: exit status ${rc} after $((SECONDS - t0)) s$([ $rc = 124 ] && echo ' (its time limit)'); see run.log._" >> "$TMP"
        echo >> "$TMP"
    fi
    return 0
}

if ((SMOKE)); then
    DEVICE=cpu
    SHAPES=(--quick-check --steps 2 --shapes sphere --preset quick --threads 2)
    THROUGHPUT=(--smoke --device cpu)
    SHAPES_TABLE=paper_shapes_quick_check.md
else
    DEVICE=cuda
    SHAPES=(--preset standard --budget "${SHAPE_BUDGET:-90}" --shapes sphere prism)
    THROUGHPUT=(--device cuda)
    SHAPES_TABLE=paper_shapes_standard_${SHAPE_BUDGET:-90}s.md
fi

{
    echo "# GPU suite"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') by benchmarks/gpu_suite.sh $*"
    echo
    echo '```'
    if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; fi
    "$PY" -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', platform.python_version())"
    echo '```'
    echo
} > "$TMP"

if [ "$DEVICE" = cuda ]; then
    echo "## GPU-only tests" >> "$TMP"
    echo >> "$TMP"
    section "GPU-only tests" 30 90 "$PY" -m pytest tests/unit -q -k cuda -p no:xvfb -p no:cacheprovider
    echo '```' >> "$TMP"
    grep -E "passed|failed|error" "$LOG" | tail -n 3 >> "$TMP"
    echo '```' >> "$TMP"
    echo >> "$TMP"
fi

echo "## CryoGEN paper shapes" >> "$TMP"
echo >> "$TMP"
section "paper shapes" 150 330 "$PY" benchmarks/paper_shapes.py "${SHAPES[@]}" --device "$DEVICE" --out "$OUT" --quiet
[ -f "$OUT/$SHAPES_TABLE" ] && sed '/^# /d' "$OUT/$SHAPES_TABLE" >> "$TMP"
echo >> "$TMP"

echo "## Throughput" >> "$TMP"
echo >> "$TMP"
section "throughput, mixed precision" 40 150 "$PY" benchmarks/throughput.py "${THROUGHPUT[@]}" --out "$TMP"

if [ "$DEVICE" = cuda ]; then
    echo "## Cell scenes (benchmarks/versus.py)" >> "$TMP"
    echo >> "$TMP"
    section "cell scenes" 120 200 "$PY" benchmarks/versus.py --budget "${VERSUS_BUDGET:-40}" --methods input low-pass ours \
        --device cuda --out "$OUT" --name gpu
    [ -f "$OUT/versus_gpu.md" ] && sed '/^# /d' "$OUT/versus_gpu.md" >> "$TMP"
    echo >> "$TMP"
    section "throughput, mixed precision off" 40 90 "$PY" benchmarks/throughput.py "${THROUGHPUT[@]}" --no-amp --out "$TMP"
fi
echo "Whole run: $((SECONDS - START)) s." >> "$TMP"
mv "$TMP" "$REPORT"
echo "written: $REPORT"
