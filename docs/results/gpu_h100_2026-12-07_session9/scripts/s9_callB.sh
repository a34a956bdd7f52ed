ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
echo "== loop / gather sweep (shipped code)"
timeout 110 python3 scratch/sweep_loops.py 2>&1 | grep -v Warn
date -u
python3 - <<'PY' && { cp scratch/triton_fused_gather.py kernels/selective/triton_fused.py; echo "== PATCHED: gather backward"; touch $R/PATCHED; } || echo "== not patched"
import json, os, sys
rows = json.load(open(os.environ["OUT"] + "/sweep_loops.json"))["rows"]
t = {(r["shape"], r["variant"]): r for r in rows if r["part"] == "bwd"}
wins = [s for (s, v) in t if v == "b_gather" and t[(s, v)]["ms"] < t[(s, "shipped")]["ms"] and t[(s, v)]["max_rel_err_vs_shipped"] < 1e-3]
print("gather wins on", wins)
sys.exit(0 if len(wins) >= 3 else 1)
PY
echo "== bench_kernels --check"
timeout 150 python3 tools/bench_kernels.py --device cuda --dtype bf16 fp32 --backends triton --check --markdown --json $R/bench_kernels.json --no-progress 2>&1 | grep -v Warn | tail -14
date -u
echo "== VMamba-T train compile"
timeout 130 python3 tools/benchmark.py --models vmamba_tiny_s1l8 --res 224 --batch 128 --mode train --compile --out $R/vmamba_train --no-progress 2>&1 | grep "vmamba\|Error" | tail -3
date -u
echo "== Vim-S / ViT-S b8 graphs"
timeout 100 python3 tools/benchmark.py --models vim_small_patch16_224 vit_small_patch16_224 --attn sdpa --res 224 1248 2048 --batch 8 --cuda-graphs --out $R/vim_vit --no-progress 2>&1 | grep "│" | tail -8
date -u
rm -f $R/*/*.png $R/*/*.csv
} 2>&1 | tee $R/callB.log
