#!/usr/bin/env bash
# The prepared GPU run: one call on a GPU machine writes gpu.md and the tables and figures beside it.
#
#   bash benchmarks/gpu_suite.sh            # on one GPU (9 minutes at most): the figures for docs/benchmarks
#   bash benchmarks/gpu_suite.sh --smoke    # on the CPU, tiny sizes, under a minute (the test suite runs it)
#
# In order of priority, each section with its own time limit, inside one deadline
# for the whole run (DEADLINE seconds, default 540; a section that no longer fits
# is skipped and the report says so, so the run always ends with its report):
#
# 1. the machine, and the GPU-only tests;
# 2. the throughput benchmark with mixed precision: training subtomograms/s and
#    achieved FLOP/s against the GPU's bf16 matmul rate measured in the same run;
#    inference of the tiles, voxels/s and peak GPU memory, on a 1000x1000x300 tomogram;
# 3. the cell scenes of benchmarks/versus.py: input, oracle low-pass, ours with the
#    quick preset and ours with the standard preset, VERSUS_BUDGET seconds of
#    training a method (default 30): which preset a GPU should default to;
# 4. the CryoGEN paper's sphere (versus.py), ours with both presets, SHAPE_BUDGET
#    seconds of training a method (default 60), beside the paper's Table 1;
# 5. the paper's prism, its ten orientations trained together
#    (benchmarks/paper_shapes.py, standard preset, SHAPE_BUDGET seconds);
# 6. the throughput benchmark with mixed precision off.
#
# OUT is the folder written (default docs/benchmarks); run.log there holds every
# section's output. With PACK=1 the tables and figures other than gpu.md and
# run.log go into one archive, gpu_suite_files.tar (for a transfer limited in files).
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

# heading TITLE: a section's title in the report; append_table FILE: a table that a section wrote
# in OUT, without its own title, when it is there.
heading() { printf '## %s\n\n' "$1" >> "$TMP"; }
append_table() {
    [ -f "$OUT/$1" ] && sed '/^# /d' "$OUT/$1" >> "$TMP"
    echo >> "$TMP"
}

DEVICE=cuda
((SMOKE)) && DEVICE=cpu
VERSUS_BUDGET=${VERSUS_BUDGET:-30}
SHAPE_BUDGET=${SHAPE_BUDGET:-60}

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
    heading "GPU-only tests"
    section "GPU-only tests" 30 60 "$PY" -m pytest tests/unit -q -k cuda -p no:xvfb -p no:cacheprovider
    { echo '```'; grep -E "passed|failed|error" "$LOG" | tail -n 3; echo '```'; echo; } >> "$TMP"

    heading "Throughput"
    section "throughput, mixed precision" 60 120 "$PY" benchmarks/throughput.py --device cuda --out "$TMP"

    heading "Cell scenes: the quick and the standard preset (benchmarks/versus.py)"
    section "cell scenes" 200 260 "$PY" benchmarks/versus.py --budget "$VERSUS_BUDGET" \
        --methods input low-pass ours ours-standard --device cuda --out "$OUT" --name gpu-presets
    append_table versus_gpu-presets.md

    heading "The paper's sphere: the quick and the standard preset (benchmarks/versus.py)"
    section "sphere" 150 200 "$PY" benchmarks/versus.py --scenes sphere --budget "$SHAPE_BUDGET" \
        --methods input ours ours-standard --device cuda --out "$OUT" --name gpu-presets-sphere
    append_table versus_gpu-presets-sphere.md

    heading "The paper's prism, ten orientations together (benchmarks/paper_shapes.py)"
    section "prism" 200 300 "$PY" benchmarks/paper_shapes.py --preset standard --budget "$SHAPE_BUDGET" \
        --shapes prism --device cuda --out "$OUT" --quiet
    append_table "paper_shapes_standard_${SHAPE_BUDGET}s.md"

    section "throughput, mixed precision off" 40 90 "$PY" benchmarks/throughput.py --device cuda --no-amp --out "$TMP"
else
    heading "CryoGEN paper shapes"
    section "paper shapes" 10 300 "$PY" benchmarks/paper_shapes.py --quick-check --steps 2 --shapes sphere \
        --preset quick --threads 2 --device cpu --out "$OUT" --quiet
    append_table paper_shapes_quick_check.md
    heading "Throughput"
    section "throughput" 10 120 "$PY" benchmarks/throughput.py --smoke --device cpu --out "$TMP"
fi
echo "Whole run: $((SECONDS - START)) s." >> "$TMP"
mv "$TMP" "$REPORT"
if [ "${PACK:-0}" = 1 ]; then
    (cd "$OUT" && find . -maxdepth 1 -type f ! -name gpu.md ! -name run.log ! -name gpu_suite_files.tar -printf '%P\n' \
        | tar -cf gpu_suite_files.tar -T - --remove-files)
fi
echo "written: $REPORT"
