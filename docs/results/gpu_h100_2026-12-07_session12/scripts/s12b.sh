# session 12, call B (<= ~240 s): the aligned-row backward on the GPU: correctness at the benchmark shapes, timing
# against HEAD, the GPU scan tests
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
python3 -c "import torch, triton, timm; print(torch.__version__, triton.__version__, timm.__version__)"
echo "== 1. aligned rows vs before (bf16)"
timeout 90 python3 scratch/s12/bwd_pad12.py 2>&1 | grep "bwd\|Error"
date -u
echo "== 2. bench_kernels, correctness against the fp32 reference in the same run"
timeout 100 python3 tools/bench_kernels.py --device cuda --dtype bf16 fp32 --backends triton --check --markdown \
  --no-progress --json $OUT/bench_kernels.json 2>&1 | grep "^|"
date -u
echo "== 3. GPU tests of the scan"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_scan_gpu.py tests/test_scan_triton_chunks.py \
  tests/test_scan_triton_blocked.py -k "gpu or Gpu or cuda or chunk or launch" 2>&1 | tail -2
date -u
rm -f $OUT/*/*.png $OUT/*/*.csv
} 2>&1 | tee $OUT/s12b.log
