ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
B="python3 tools/benchmark.py --res 224 --batch 128 --no-progress"
{
date -u
timeout 60 python3 scratch/s7_cross.py 2>&1 | grep -v Warn
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_cross_scan.py 2>&1 | tail -1
timeout 110 $B --models vmamba_tiny_s1l8 --compile --cuda-graphs --channels-last --out /tmp/v1 2>&1 | grep "│ vmamba"
cp /tmp/v1/benchmark.json $R/vmamba_t_infer_compile_graphs_cl.json
timeout 100 $B --models vmamba_tiny_s1l8 --compile --cuda-graphs --out /tmp/v2 2>&1 | grep "│ vmamba"
cp /tmp/v2/benchmark.json $R/vmamba_t_infer_compile_graphs.json
timeout 130 $B --models vmamba_tiny_s1l8 --mode train --compile --channels-last --out /tmp/v3 2>&1 | grep "│ vmamba"
cp /tmp/v3/benchmark.json $R/vmamba_t_train_compile_cl.json
timeout 100 $B --models vmamba_tiny_s1l8 --mode train --compile --out /tmp/v4 2>&1 | grep "│ vmamba"
cp /tmp/v4/benchmark.json $R/vmamba_t_train_compile.json
timeout 60 $B --models swin_tiny_patch4_window7_224 --attn sdpa --cuda-graphs --out /tmp/v5 2>&1 | grep "│ swin"
timeout 60 $B --models swin_tiny_patch4_window7_224 --attn sdpa --mode train --out /tmp/v6 2>&1 | grep "│ swin"
python3 -c "import json; json.dump([json.load(open(f'/tmp/v{i}/benchmark.json')) for i in (5, 6)], open('$R/swin_t_b128.json', 'w'), indent=1)"
} 2>&1 | tee $R/call3.log
