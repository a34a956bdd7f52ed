ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
B="python3 tools/benchmark.py --models vmamba_tiny_s1l8 --res 224 --batch 128 --no-progress"
{
date -u
timeout 100 $B --compile --cuda-graphs --out /tmp/v1 2>&1 | grep "│ vmamba"
cp /tmp/v1/benchmark.json $R/vmamba_t_infer_compile_graphs.json
timeout 150 $B --mode train --compile --out /tmp/v2 2>&1 | grep "│ vmamba"
cp /tmp/v2/benchmark.json $R/vmamba_t_train_compile.json
timeout 40 python3 -m pytest -q -p no:cacheprovider tests/test_vmamba.py -k "linear2d or triton" 2>&1 | tail -1
} 2>&1 | tee $R/call5.log
