# session 12, call A (session 11 call C as prepared, paths fixed) (one call, <= 560 s): the session's changes on the GPU, then session 10's open checks
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
S=docs/results/gpu_h100_2026-12-07_session10/scripts
V="--models vmamba_tiny_s1l8 --res 224 --batch 128 --no-progress"
M="--models vim_small_patch16_224 --res 224 --batch 8 --no-progress"
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u; nproc
python3 -c "import torch, triton, timm; print(torch.__version__, triton.__version__, timm.__version__)"
echo "== 1. bench_kernels, correctness against the fp32 reference in the same run"
timeout 120 python3 tools/bench_kernels.py --device cuda --dtype bf16 fp32 --backends triton --check --markdown \
  --no-progress --json $OUT/bench_kernels.json 2>&1 | grep "^|"
date -u
echo "== 2. GPU tests: routing, launch config, scan, VMamba"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_scan_triton_blocked.py tests/test_cross_scan.py \
  tests/test_conv1d_silu.py tests/test_scan_triton_chunks.py tests/test_scan_gpu.py tests/test_vmamba.py \
  -k "eager_calls or launch_config or gpu or Gpu or cuda or vmamba or ss2d or SS2D or route" 2>&1 | tail -2
date -u
echo "== 3. CPU per call"
timeout 60 python3 docs/results/gpu_h100_2026-12-07_session11/scripts/launch_cpu.py 2>&1 | grep "us per call"
echo "== 3b. Nsight Compute: stall reasons of the N = 16 backward (vim_s_layer), if ncu is there"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "ncu: ${NCU:-none}"
[ -n "$NCU" ] && timeout 90 $NCU --kernel-name regex:_bwd_kernel --launch-skip 1 --launch-count 1 --section WarpStateStats \
  --section SchedulerStats --section Occupancy --section ComputeWorkloadAnalysis --section LaunchStats --section SourceCounters --section MemoryWorkloadAnalysis \
  python3 docs/results/gpu_h100_2026-12-07_session11/scripts/ncu_bwd.py > $OUT/ncu_bwd.txt 2>&1; \
  grep -v "^==PROF==\|Warning" $OUT/ncu_bwd.txt | grep -i "stall\|red\.sum\|dram__bytes\|shfl\|throughput\|occupancy\|warp cycles\|issued\|eligible\|registers\|block limit\|active warps\|no eligible\|IPC" | head -90
[ -n "$NCU" ] && timeout 60 $NCU --kernel-name regex:_bwd_kernel --launch-skip 1 --launch-count 1 \
  --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,lts__t_sectors_op_red.sum,lts__t_requests_op_red.sum,dram__bytes.sum,smsp__inst_executed_op_shfl.sum" \
  python3 docs/results/gpu_h100_2026-12-07_session11/scripts/ncu_bwd.py > $OUT/ncu_bwd_metrics.txt 2>&1; \
  grep -v "^==PROF==\|Warning" $OUT/ncu_bwd_metrics.txt | grep "stalled\|sum" | sort -k3 -g -r | head -40
date -u
echo "== 3c. N = 16 backward: atomics and row alignment (timing-only variants)"
timeout 150 python3 scratch/s12/bwd_diag12.py 2>&1 | grep "bwd\|Error"
date -u
echo "== 4. Vim-S @224 b8 inference: eager, eager with custom ops forced, CUDA graphs"
timeout 45 python3 tools/benchmark.py $M --out $OUT/vim_eager 2>&1 | grep "│ vim\|Error"
timeout 45 python3 docs/results/gpu_h100_2026-12-07_session11/scripts/bench_ops_forced.py $M --out $OUT/vim_eager_ops 2>&1 | grep "│ vim\|Error"
timeout 45 python3 tools/benchmark.py $M --cuda-graphs --out $OUT/vim_graphs 2>&1 | grep "│ vim\|Error"
date -u
echo "== 5. VMamba-T b128 train, landed SS2D, compiled, TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0"
TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0 timeout 120 python3 tools/benchmark.py $V --compile --mode train --out $OUT/train_nlo 2>&1 | grep "│ vmamba\|Error"
date -u
echo "== 7. VMamba-T b128 inference, compile + CUDA graphs"
timeout 80 python3 tools/benchmark.py $V --compile --cuda-graphs --out $OUT/infer 2>&1 | grep "│ vmamba\|Error"
date -u
rm -f $OUT/*/*.png $OUT/*/*.csv
echo "== 8. models on the GPU (bf16 SGD steps, triton == torch scans)"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_models_gpu.py 2>&1 | tail -2
date -u
} 2>&1 | tee $OUT/s12a.log
