# Prepared for the next session (one call, ~150 s): the aligned-row backward variants on the GPU.
# 1. shipped vs tf_padded2 (all rows padded) vs tf_padded3 (only B / C padded), bf16, with errors vs shipped;
# 2. bench_kernels --check (fp32 reference) with tf_padded3 in place of the library's file (on the device copy only);
# 3. the GPU scan tests with it.  The variants are patches against kernels/selective/triton_fused.py of bfa185c
# (variant_src.py applies them and refuses a hunk that no longer matches).
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
S=docs/results/gpu_h100_2026-12-07_session12/scripts
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)"
echo "== 1. backward: shipped vs aligned-row variants"
timeout 120 python3 $S/bwd_pad13.py 2>&1 | grep "bwd\|Error"
date -u
echo "== 2. bench_kernels --check with tf_padded3"
if python3 $S/variant_src.py tf_padded3.patch > /tmp/tf_padded3_lib.py; then
  cp /tmp/tf_padded3_lib.py kernels/selective/triton_fused.py
  timeout 100 python3 tools/bench_kernels.py --device cuda --dtype bf16 fp32 --backends triton --check --markdown \
    --no-progress --json $OUT/bench_kernels_padded3.json 2>&1 | grep "^|"
  echo "== 3. GPU scan tests with tf_padded3"
  timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_scan_gpu.py tests/test_scan_triton_chunks.py \
    tests/test_scan_triton_blocked.py tests/test_vim.py -k "gpu or Gpu or cuda or chunk or launch or triton" 2>&1 | tail -2
else
  echo "tf_padded3.patch no longer applies to kernels/selective/triton_fused.py: remake it"
fi
date -u
} 2>&1 | tee $OUT/s13a.log
