# Prepared for the next session with device time (not run): the forward's 2x-unrolled state loop checked
# against the fp32 reference (bf16 + fp32, all four shapes) and timed beside the shipped forward, one call
# (~2 min).  From the repository root on the device:  bash docs/results/gpu_h100_2026-12-07_session9/scripts/next_verify_unroll.sh
set -e
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
K="python3 tools/bench_kernels.py --device cuda --dtype bf16 fp32 --backends triton --check --markdown --no-progress"
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
echo "== shipped"; $K --json $OUT/bench_kernels_shipped.json 2>&1 | grep "^|"
patch -p1 < docs/results/gpu_h100_2026-12-07_session9/fwd_state_unroll2_not_landed.patch
echo "== forward state loop unrolled 2x"; $K --json $OUT/bench_kernels_unroll2.json 2>&1 | grep "^|"
python3 tools/benchmark.py --models vim_small_patch16_224 --res 224 --batch 8 --cuda-graphs --out /tmp/v224 --no-progress 2>&1 | grep "│ vim"
patch -R -p1 < docs/results/gpu_h100_2026-12-07_session9/fwd_state_unroll2_not_landed.patch
date -u
} 2>&1 | tee $OUT/next_verify_unroll.log
