# session 10, as run on the device from the repository root (the python scripts were in scratch/ then)
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
git log --oneline | head -1
echo "=== 1. chunked scan launch-config sweep"
timeout 170 python3 scratch/sweep_n1.py 2>&1 | grep -v Warn
date -u
echo "=== 2. VMamba-T compiled train step: projections x inductor layout optimisation"
timeout 380 python3 scratch/prof_vmamba.py shipped bd shipped_nlo bd_nlo 2>&1 | grep -v "Warn\|_warn_once"
date -u
} 2>&1 | tee $R/s10b.log
