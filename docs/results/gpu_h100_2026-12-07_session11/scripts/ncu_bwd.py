"""One chunked backward launch at vim_s_layer (bf16), for Nsight Compute: ncu --kernel-name _bwd_kernel ..."""
import torch
from vision_mamba.kernels.selective import triton_fused as tf
from vision_mamba.bench.kernels import SHAPES, make_inputs
ins = make_inputs(SHAPES["vim_s_layer"], torch.bfloat16, "cuda", seed=3)
g = torch.randn_like(ins["u"])
_, ck = tf.forward(**ins, delta_softplus=True, kernel="chunked")
for _ in range(2):
    tf.backward(g, None, **ins, checkpoints=ck, delta_softplus=True, kernel="chunked")
torch.cuda.synchronize()
