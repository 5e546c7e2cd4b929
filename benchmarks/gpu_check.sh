#!/usr/bin/env bash
# GPU check of the engine, in one go (under 10 minutes on one device):
#   1. the device (nvidia-smi, torch's view of it);
#   2. the CUDA tests: pytest -m cuda (the tests that skip without a device);
#   3. benchmarks/bench_engine.py --device cuda --section gpu: W1 and W2 at R = 64, 256,
#      1024, eager (and compiled for SS-GL at R = 256), with the device's measured GEMM rate.
# Usage: benchmarks/gpu_check.sh [OUTDIR]   (default: $OUT if set, else gpu_check_out)
# Output (docs/engine.md, "Performance", describes it): OUTDIR/device.txt, pytest.txt,
# bench.txt (the tables), gpu.json (every figure), and one summary line per part on stdout:
#   GPU-CHECK device <name> | tests <passed>/<failed>/<skipped> rc=<rc> | bench rc=<rc>
# The exit status is 0 when the tests and the benchmark both succeeded.
set -u
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUTDIR"
PY="${PYTHON:-python}"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

{ nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available(),
"device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
} > "$OUTDIR/device.txt" 2>&1
name=$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>/dev/null)
echo "GPU-CHECK device ${name:-none}"

timeout 270 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/simulations > "$OUTDIR/pytest.txt" 2>&1
test_rc=$?
last=$(tail -n 1 "$OUTDIR/pytest.txt")
passed=$(grep -o '[0-9]* passed' <<< "$last" | cut -d' ' -f1)
failed=$(grep -o '[0-9]* failed' <<< "$last" | cut -d' ' -f1)
skipped=$(grep -o '[0-9]* skipped' <<< "$last" | cut -d' ' -f1)
echo "GPU-CHECK tests ${passed:-0}/${failed:-0}/${skipped:-0} rc=$test_rc"

timeout 300 "$PY" benchmarks/bench_engine.py --device cuda --section gpu --compile \
    --json "$OUTDIR/gpu.json" > "$OUTDIR/bench.txt" 2>&1
bench_rc=$?
echo "GPU-CHECK bench rc=$bench_rc"
grep -E '^\| (W1|W2):' "$OUTDIR/bench.txt" || tail -n 20 "$OUTDIR/bench.txt"
[ "$test_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
