# session 13, call B (one call, <= 600 s): the tile kernels (B / C in aligned rows, scans by columns in registers,
# no reverse=True scans) against HEAD's, then bench_kernels --check, the GPU tests, model benchmarks
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
V="--models vmamba_tiny_s1l8 --res 224 --batch 128 --no-progress"
M="--models vim_small_patch16_224 --res 224 --batch 8 --no-progress"
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
python3 -c "import torch, triton, timm; print(torch.__version__, triton.__version__, timm.__version__)"
echo "== 1. HEAD vs tile kernels, fwd / bwd separately, bf16, errors new vs head"
timeout 170 python3 docs/results/gpu_2026-12-08_session13/scripts/cmp13.py 2>&1 | grep "ms\|Error"
date -u
echo "== 2. bench_kernels, correctness against the fp32 reference in the same run"
timeout 120 python3 tools/bench_kernels.py --device cuda --dtype bf16 fp32 --backends triton --check --markdown \
  --no-progress --json $OUT/bench_kernels.json 2>&1 | grep "^|"
date -u
echo "== 3. GPU tests of the scan paths"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_scan_triton_blocked.py tests/test_cross_scan.py \
  tests/test_conv1d_silu.py tests/test_scan_triton_chunks.py tests/test_scan_gpu.py tests/test_vmamba.py tests/test_vim.py \
  -k "eager_calls or launch_config or gpu or Gpu or cuda or vmamba or ss2d or SS2D or route or chunk" 2>&1 | tail -2
date -u
echo "== 4. Vim-S @224 b8 inference: eager, CUDA graphs"
timeout 45 python3 tools/benchmark.py $M --out $OUT/vim_eager 2>&1 | grep "│ vim\|Error"
timeout 45 python3 tools/benchmark.py $M --cuda-graphs --out $OUT/vim_graphs 2>&1 | grep "│ vim\|Error"
date -u
echo "== 5. VMamba-T b128 train, compiled, TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0"
TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0 timeout 100 python3 tools/benchmark.py $V --compile --mode train --out $OUT/train_nlo 2>&1 | grep "│ vmamba\|Error"
date -u
rm -f $OUT/*/*.png $OUT/*/*.csv
echo "== 6. models on the GPU"
timeout 110 python3 -m pytest -q -p no:cacheprovider tests/test_models_gpu.py 2>&1 | tail -2
date -u
} 2>&1 | tee $OUT/s13b.log
