#!/usr/bin/env bash
# The GPU checks, in one short run (< 8 minutes on one modern GPU). Usage:
#   benchmarks/gpu.sh            # CUDA: the figures for benchmarks/README.md ("GPU")
#   benchmarks/gpu.sh --device cpu   # smoke test on the CPU with tiny sizes (a few minutes on 2 cores)
#   benchmarks/gpu.sh --device cuda:1 (or the device alone: benchmarks/gpu.sh cpu)
# What it runs:
#   1. every method's derain, seconds per megapixel (bench_methods.py)
#   2. rainbench run with AMP and without, on the same data: mean PSNR must agree to 0.01 dB
#   3. the NLCL training step at batch 1 and 8 (256 x 256), fp32 and AMP (bench_nlcl.py)
#   4. a 5-minute NLCL training run scored on held-out images (learning_curves.py)
#   5. the run of 2. through Ray (--engine ray, one GPU per replica): its scores must equal 2.'s
# Output goes to $OUT (default /tmp/rainbench-gpu); the log is $OUT/gpu.log.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${1:-}" = --device ] && shift
DEVICE=${1:-cuda}
OUT=${OUT:-/tmp/rainbench-gpu}
PY=${PYTHON:-.venv/bin/python}
RB=${RAINBENCH:-.venv/bin/rainbench}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
if [ "$DEVICE" = cpu ]; then
    SIZE=160x120; BATCHES="1"; CROP=64; STEPS=1; MINUTES=0.3; BUDGETS=2,4; SIDE=64; ITERS=5; DEMO_SIZE=64
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
    SIZE=1920x1080; BATCHES="1 8"; CROP=256; STEPS=5; MINUTES=5; BUDGETS=100,200,400,800,1600,3200,6400; SIDE=256
    ITERS=300; DEMO_SIZE=256
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
fi
echo "== $(date -u) device $DEVICE"

echo "== 1. derain, seconds per megapixel at $SIZE"
"$PY" benchmarks/bench_methods.py --device "$DEVICE" --size "$SIZE" --repeat 2 --images 0

echo "== 2. rainbench run: AMP against full precision"
"$RB" demo --data-only -o "$OUT/demo" --size "$DEMO_SIZE"
"$RB" ingest "$OUT/demo/paired" -o "$OUT/dataset" --min-side 32 --split-ratios train=0.5,test=0.5
"$RB" train -m prenet --pairs "$OUT/dataset" --iters "$ITERS" -c crop=48 -o "$OUT/train/prenet" --device "$DEVICE"
for amp in amp no-amp; do
    "$RB" run -m guided,prenet --weights "prenet=$OUT/train/prenet/weights.pt" --dataset "$OUT/dataset" \
        --metric psnr,ssim -o "$OUT/run-$amp" --device "$DEVICE" "--$amp" --allow-failures
done
"$PY" benchmarks/compare_runs.py "$OUT/run-amp" "$OUT/run-no-amp" --tolerance 0.01

echo "== 3. NLCL training step, ${CROP}x${CROP}, batches $BATCHES, fp32 and AMP"
for amp in off on; do
    "$PY" benchmarks/bench_nlcl.py --only train --device "$DEVICE" --batches $BATCHES --crop "$CROP" --steps "$STEPS" --amp "$amp"
done

echo "== 4. NLCL for $MINUTES minutes, held-out PSNR"
"$PY" benchmarks/learning_curves.py --device "$DEVICE" --preset rain100l --methods nlcl --minutes "$MINUTES" \
    --budgets "$BUDGETS" --max-side "$SIDE" --out "$OUT/curves"
echo "== 5. the same run through Ray (a local instance; --engine ray puts each replica on a GPU)"
START=$SECONDS
"$RB" run -m guided,prenet --weights "prenet=$OUT/train/prenet/weights.pt" \
    --dataset "$OUT/dataset" --metric psnr,ssim -o "$OUT/run-ray" --device "$DEVICE" --no-amp --allow-failures \
    --engine ray
echo "ray run: $((SECONDS - START)) s wall"
"$PY" benchmarks/compare_runs.py "$OUT/run-ray" "$OUT/run-no-amp" --tolerance 0.01
echo "== done $(date -u)"
