# session 13, call C (<= 250 s): the tile kernels' chunk width per shape (sweep13.py), then the models' triton == torch
# check on the GPU (the 50-step bf16 test of every model did not fit call B)
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
echo "== 1. chunk width sweep (bf16)"
timeout 120 python3 docs/results/gpu_2026-12-08_session13/scripts/sweep13.py 2>&1 | grep "ms\|Error"
date -u
echo "== 2. models: triton and torch scans agree"
timeout 110 python3 -m pytest -q -p no:cacheprovider tests/test_models_gpu.py -k agree 2>&1 | tail -3
date -u
} 2>&1 | tee $OUT/s13c.log
