"""Benchmarks of vision-mamba; `vision_mamba.bench.kernels` compares the selective-scan backends."""
