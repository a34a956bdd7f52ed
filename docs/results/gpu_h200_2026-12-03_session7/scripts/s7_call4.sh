ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
{
date -u
timeout 60 python3 scratch/s7_cross.py 2>&1 | grep -v Warn
timeout 150 python3 tools/bench_kernels.py --device cuda --dtype bf16 fp32 --backends triton --check --markdown --json $R/bench_kernels.json --no-progress 2>&1 | grep -v Warn | tail -10
timeout 80 python3 tools/benchmark.py --models vim_small_patch16_224 --res 224 1248 2048 --batch 8 --cuda-graphs --out /tmp/b_vim --no-progress 2>&1 | grep "│ vim"
cp /tmp/b_vim/benchmark.json $R/vim_s_b8_graphs.json
timeout 150 python3 scratch/s7_vmprof.py train compile 2>&1 | grep -v Warn
} 2>&1 | tee $R/call4.log
