# session 11, call B: fwd+bwd overhead breakdown + chunk 64/128 at L~196, then N=16 backward variants
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u; git log --oneline | head -1
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)"
echo "== overhead"
timeout 200 python3 scratch/s11/overhead.py 2>&1 | grep -v Warning
echo "== bwd variants"
timeout 240 python3 scratch/s11/bwd_variants2.py 2>&1 | grep -v Warning
date -u
} 2>&1 | tee $OUT/s11b.log
