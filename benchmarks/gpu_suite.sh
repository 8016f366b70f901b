#!/usr/bin/env bash
# The prepared GPU run: one call on a GPU machine writes docs/benchmarks/gpu.md.
#
#   bash benchmarks/gpu_suite.sh            # on one GPU (about 8 minutes): the figures for docs/benchmarks
#   bash benchmarks/gpu_suite.sh --smoke    # on the CPU, tiny sizes, under a minute (the test suite runs it)
#
# It records the machine, runs the GPU-only tests, the standard preset on the
# CryoGEN paper's sphere and prism protocols (PSNR/SSIM beside the paper's
# Table 1), and the throughput benchmark with mixed precision on and off
# (training subtomograms/s and achieved FLOP/s against the GPU's bf16 matmul
# rate measured in the same run; inference voxels/s and peak GPU memory on a
# 1000x1000x300 tomogram). STEPS (default 1000) sets the training steps of the
# paper shapes so that the run fits its time; OUT the folder written.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python

if [ "${1:-}" = "--smoke" ]; then
    OUT=${OUT:-$(mktemp -d)}
    DEVICE=cpu
    SHAPES=(--quick-check --steps 2 --shapes sphere --preset quick --threads 2)
    THROUGHPUT=(--smoke --device cpu)
else
    OUT=${OUT:-docs/benchmarks}
    DEVICE=cuda
    SHAPES=(--preset standard --steps "${STEPS:-1000}" --shapes sphere prism)
    THROUGHPUT=(--device cuda)
fi
mkdir -p "$OUT"
REPORT="$OUT/gpu.md"
TMP="$REPORT.tmp"
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
    echo '```' >> "$TMP"
    "$PY" -m pytest tests -q -m "not gui and not e2e" -k cuda -p no:xvfb 2>&1 | tail -n 5 >> "$TMP" || true
    echo '```' >> "$TMP"
    echo >> "$TMP"
fi

echo "## CryoGEN paper shapes" >> "$TMP"
echo >> "$TMP"
"$PY" benchmarks/paper_shapes.py "${SHAPES[@]}" --device "$DEVICE" --out "$OUT" --quiet > "$OUT/.shapes.md"
cat "$OUT/.shapes.md" >> "$TMP"
rm -f "$OUT/.shapes.md"
echo >> "$TMP"

echo "## Throughput" >> "$TMP"
echo >> "$TMP"
"$PY" benchmarks/throughput.py "${THROUGHPUT[@]}" --out "$TMP" > /dev/null
if [ "$DEVICE" = cuda ]; then
    "$PY" benchmarks/throughput.py "${THROUGHPUT[@]}" --no-amp --out "$TMP" > /dev/null
fi
mv "$TMP" "$REPORT"
echo "written: $REPORT"
