# session 10, as run on the device from the repository root (the python scripts were in scratch/ then)
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
python3 -c "import torch, triton, timm; print(torch.__version__, triton.__version__, timm.__version__)"
echo "=== 1. forward 2x unroll check"
timeout 200 bash docs/results/gpu_h100_2026-12-07_session9/scripts/next_verify_unroll.sh 2>&1 | grep -v Warn
git diff --stat
date -u
echo "=== 2. N=16 backward scan diagnostic"
timeout 100 python3 docs/results/gpu_h100_2026-12-07_session9/scripts/next_bwd_scan_diag.py 2>&1 | grep -v Warn
date -u
echo "=== 3. VMamba-T compiled train step profiles"
timeout 240 python3 scratch/prof_vmamba.py shipped bd 2>&1 | grep -v Warn
date -u
echo "=== 4. VMamba-T / Swin-T b128 inference, compile + graphs"
timeout 100 python3 tools/benchmark.py --models vmamba_tiny_s1l8 --res 224 --batch 128 --compile --cuda-graphs --out $R/vmamba_infer --no-progress 2>&1 | grep "│\|Error" | tail -4
date -u
rm -f $R/*/*.png $R/*/*.csv
} 2>&1 | tee $R/s10a.log
