ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
B="python3 tools/benchmark.py --models vmamba_tiny_s1l8 --res 224 --batch 128 --mode train --compile --no-progress"
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
python3 -c "import torch, triton, timm; print(torch.__version__, triton.__version__, timm.__version__)"
echo "== train, x_proj/dt_proj as matmul (new)"
timeout 130 $B --out $OUT/train_matmul_proj 2>&1 | grep -v Warn | tail -5
date -u
echo "== conv trace (new code, compiled)"
timeout 120 python3 docs/results/static_sm90_2026-12-07/next_vmamba_conv_trace.py --modes compile 2>&1 | grep -v Warn | tail -50
date -u
echo "== bwd sweep"
timeout 190 python3 docs/results/static_sm90_2026-12-07/next_bwd_sweep.py 2>&1 | grep -v Warn
date -u
cp scratch/ss2d_old.py vision_mamba/layers/ss2d.py
echo "== train, grouped conv1d projections (old, shipped)"
timeout 130 $B --out $OUT/train_conv1d_proj 2>&1 | grep -v Warn | tail -5
date -u
} 2>&1 | tee $OUT/call1.log
