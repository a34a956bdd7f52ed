"""HEAD's chunked kernels (tf_shipped.py beside this script: e60121f's kernels/selective/triton_fused.py, made with
`git show e60121f:kernels/selective/triton_fused.py > tf_shipped.py`, not committed) as a stand-alone module that
imports its helpers from the installed package.  Shared by cmp13.py and eager13.py."""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def load_head():
    src = open(os.path.join(HERE, "tf_shipped.py")).read()
    for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                          ("from ._common", "from vision_mamba.kernels.selective._common"),
                          ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
        src = src.replace(rel, absolute)
    path = "/tmp/tf_shipped_mod.py"      # triton.jit reads the kernels' source through inspect: a real file
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location("tf_shipped_mod", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
