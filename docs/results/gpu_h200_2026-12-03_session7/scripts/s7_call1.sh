ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_scan_triton_blocked.py tests/test_cross_scan.py 2>&1 | tail -3
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_vim.py -k "token_major or triton or blocked or kernel" 2>&1 | tail -2
timeout 100 python3 tools/bench_kernels.py --device cuda --layout token-major --shapes vim_s_1248 vim_s_2048 vim_s_layer --dtype bf16 fp32 --backends triton --check --markdown --json $R/bench_tm.json --no-progress 2>&1 | grep -v Warn | tail -10
timeout 70 python3 tools/benchmark.py --models vim_small_patch16_224 --res 224 1248 2048 --batch 8 --cuda-graphs --out /tmp/b_vim --no-progress 2>&1 | grep -v Warn | tail -6
cp /tmp/b_vim/benchmark.json $R/vim_s_b8_graphs.json
timeout 130 python3 tools/benchmark.py --models vmamba_tiny_s1l8 --res 224 --batch 128 --mode train --compile --out /tmp/b_vmt --no-progress 2>&1 | grep -v Warn | tail -8
cp /tmp/b_vmt/benchmark.json $R/vmamba_t_train_compile.json
} 2>&1 | tee $R/call1.log
