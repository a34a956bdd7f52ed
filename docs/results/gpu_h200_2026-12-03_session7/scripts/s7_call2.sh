ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
{
date -u
TRITON_CACHE_DIR=/tmp/tc timeout 80 python3 tools/bench_kernels.py --device cuda --layout token-major --shapes vim_s_1248 vim_s_layer --dtype bf16 --backends triton --check --markdown --no-progress 2>&1 | grep -v Warn | tail -4
for f in $(ls /tmp/tc/*/_fwd_kernel.ttgir /tmp/tc/*/_fwd_segment_states_kernel.ttgir 2>/dev/null); do echo "$f: converts in file $(grep -c convert_layout $f)"; grep "^#blocked" $f; done
mkdir -p $R/ttgir; cp /tmp/tc/*/_fwd_kernel.ttgir $R/ttgir/ 2>/dev/null; cp /tmp/tc/*/_fwd_segment_states_kernel.ttgir $R/ttgir/seg.ttgir 2>/dev/null
timeout 200 python3 scratch/s7_vmprof.py infer eager cl cl+compile 2>&1 | grep -v Warn
timeout 230 python3 scratch/s7_vmprof.py train cl cl+compile 2>&1 | grep -v Warn
} 2>&1 | tee $R/call2.log
