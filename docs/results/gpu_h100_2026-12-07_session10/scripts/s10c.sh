# session 10, as run on the device from the repository root (the python scripts were in scratch/ then)
ln -sfn ../kernels vision_mamba/kernels
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
R=$OUT
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
echo "=== 1. backward variants (adjoint as a forward scan over the reversed chunk)"
timeout 90 python3 scratch/bwd_variants.py 2>&1 | grep -v Warn
date -u
B="--models vmamba_tiny_s1l8 --res 224 --batch 128 --mode train --compile --no-progress"
for v in shipped bd_nlo; do
  echo "=== 2. VMamba-T train compile, tools/benchmark.py, own process: $v"
  if [ $v = bd_nlo ]; then export TORCHINDUCTOR_LAYOUT_OPTIMIZATION=0; fi
  timeout 140 python3 scratch/bench_variant.py ${v%_nlo} $B --out $R/train_$v 2>&1 | grep "│ vmamba\|Error" | tail -3
  date -u
done
rm -f $R/*/*.png $R/*/*.csv
} 2>&1 | tee $R/s10c.log
