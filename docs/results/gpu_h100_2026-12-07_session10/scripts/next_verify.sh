# Prepared for the next session with device time (not run; ~6 min, one call).  From the repository root:
#   bash docs/results/gpu_h100_2026-12-07_session10/scripts/next_verify.sh
# 1-2: the landed SS2D (d359096: block-diagonal projections when training on CUDA) timed as committed, with
#      inductor's layout optimisation off and at its default (the default was never timed in its own process);
# 3:   the per-route broadcast matmul ("kbmm": no block-diagonal zeros) with the optimisation off;
# 4:   inference, which keeps the grouped convs (5424 img/s in session 10);
# 5:   the GPU runs of the VMamba tests (dense branch against the torch backend's grouped one).
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
S=docs/results/gpu_h100_2026-12-07_session10/scripts
B="--models vmamba_tiny_s1l8 --res 224 --batch 128 --compile --no-progress"
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u; git log --oneline | head -1
echo "== 1. landed, train, TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0"
TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0 timeout 140 python3 tools/benchmark.py $B --mode train --out $OUT/train_no_layout_opt 2>&1 | grep "│ vmamba\|Error"
echo "== 2. landed, train, default layout optimisation"
timeout 140 python3 tools/benchmark.py $B --mode train --out $OUT/train_default 2>&1 | grep "│ vmamba\|Error"
echo "== 3. kbmm, train, TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0"
TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0 timeout 140 python3 $S/bench_variant.py kbmm $B --mode train --out $OUT/train_kbmm_no_layout_opt 2>&1 | grep "│ vmamba\|Error"
echo "== 4. landed, inference, compile + CUDA graphs"
timeout 90 python3 tools/benchmark.py $B --cuda-graphs --out $OUT/infer 2>&1 | grep "│ vmamba\|Error"
echo "== 5. GPU tests"
timeout 60 python3 -m pytest -q tests/test_vmamba.py 2>&1 | tail -2
date -u
rm -f $OUT/*/*.png $OUT/*/*.csv
} 2>&1 | tee $OUT/next_verify.log
