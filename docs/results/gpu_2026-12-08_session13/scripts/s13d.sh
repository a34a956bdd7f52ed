# session 13, call D (<= 150 s): why Vim-S @224 b8 eager went from 25.7 to 55.1 ms in call B, fp32 chunk width, inference width
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
timeout 140 python3 docs/results/gpu_2026-12-08_session13/scripts/eager13.py 2>&1 | grep -v "^\s*$" | grep -v Warning
date -u; } 2>&1 | tee $OUT/s13d.log
