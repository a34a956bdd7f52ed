"""The source of a kernel variant: a unified diff beside this script (tf_padded*.patch, made against
kernels/selective/triton_fused.py of bfa185c) applied to the repository's kernels/selective/triton_fused.py.
Every hunk must match exactly, so a changed library file is refused instead of silently mixed.
Command line: `python3 variant_src.py tf_padded3.patch > file.py`."""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = next(p for p in (HERE.rsplit("/", k)[0] for k in range(1, 6)) if os.path.isdir(os.path.join(p, "kernels")))


def patched(patch_name: str, relative_imports: bool = True) -> str:
    lines = open(os.path.join(ROOT, "kernels/selective/triton_fused.py")).read().split("\n")
    out, pos = [], 0
    hunks = re.split(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@.*\n", open(os.path.join(HERE, patch_name)).read(),
                     flags=re.M)[1:]
    for start, body in zip(hunks[0::2], hunks[1::2]):
        start = int(start) - 1 if int(start) > 0 else 0
        out += lines[pos:start]
        pos = start
        for line in body.split("\n"):
            if not line or line.startswith("\\"):
                continue
            tag, text = line[0], line[1:]
            if tag in " -":
                if lines[pos] != text:
                    raise ValueError(f"{patch_name}: line {pos + 1} of triton_fused.py is {lines[pos]!r}, "
                                     f"the patch expects {text!r} (run in a checkout of bfa185c)")
                pos += 1
                if tag == " ":
                    out.append(text)
            elif tag == "+":
                out.append(text)
    src = "\n".join(out + lines[pos:])
    if not relative_imports:   # loaded as a stand-alone module, not from the package
        for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                              ("from ._common", "from vision_mamba.kernels.selective._common"),
                              ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
            src = src.replace(rel, absolute)
    return src


def load(patch_name: str):
    """The variant as a module (imports from the installed package)."""
    import importlib.util
    name = patch_name.replace(".patch", "")
    path = f"/tmp/{name}_variant.py"
    open(path, "w").write(patched(patch_name, relative_imports=False))
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


if __name__ == "__main__":
    sys.stdout.write(patched(sys.argv[1]))
