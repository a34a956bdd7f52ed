"""Export the zoo's models to ONNX or torch.export (.pt2), with a dynamic batch size, and check the result.

    model = build_model("vim_small_patch16_224", img_size=224)            # plain-ops scan, eval mode
    export_model(model, example_input(model, 224), "onnx", "vim_s.onnx")  # or "torch_export", "vim_s.pt2"
    verify_onnx("vim_s.onnx", model, example_input(model, 224, batch=3))  # onnxruntime vs PyTorch, rel. error

Every SSM model is exported with the `torch` selective-scan backend and the `reference` scan ordering:
both are plain PyTorch ops (the Triton backend is a custom op that ONNX has no kernel for).  The
torch backend's Python loops are unrolled into the graph for the traced sequence length, so an export
holds one resolution; the batch size stays dynamic.

Both formats go through one `torch.export.export` (the ONNX file is translated from that program by
torch's dynamo-based exporter, torch.onnx.export(dynamo=True)): the TorchScript-based exporter cannot
trace the scan's autograd.Function and is deprecated.

Loading: `load_exported` checks a .pt2 before torch.export.load reads it, because torch.export.load
unpickles parts of an archive without weights_only (pickled tensor subclasses, opaque constants, the
legacy weights file, and a weights_only=False fallback for the sample inputs); archives that need any
of that are refused.  An ONNX file holds no pickle.
"""
from __future__ import annotations

import difflib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence

import timm
import torch
from torch import nn

from .models import list_models, umamba_bot, umamba_enc
from .models._inputs import positive_int
from .models.weights import load_pretrained
from .training.checkpoint import CheckpointError

FORMATS = {"onnx": ".onnx", "torch_export": ".pt2"}
SEGMENTATION = {"umamba_bot": umamba_bot, "umamba_enc": umamba_enc}


def use_plain_ops(model: nn.Module) -> nn.Module:
    """Every selective scan of `model` on the `torch` backend and every scan ordering on `reference`
    (the plain-ops paths that export and run anywhere); returns the model."""
    for module in model.modules():
        if hasattr(module, "scan_backend"):
            module.scan_backend = "torch"
        if hasattr(module, "cross_scan_backend"):
            module.cross_scan_backend = "reference"
    return model


def exportable_models() -> list[str]:
    """The names `build_model` takes: every classifier of the zoo, and the U-Mamba networks."""
    return [name for name, _ in list_models()] + sorted(SEGMENTATION)


def build_model(name: str, img_size: int, *, num_classes: Optional[int] = None, in_chans: int = 3,
                spatial_dims: int = 2, checkpoint: Optional[str | os.PathLike] = None,
                sha256: Optional[str] = None, **kwargs: Any) -> nn.Module:
    """`name` built for img_size inputs, in eval mode on the plain-ops scan, optionally with weights.

    Classifiers: any registered model of the zoo (Vim lays its position embedding out for img_size).
    Segmentation: "umamba_bot" / "umamba_enc" with `spatial_dims` 2 or 3, without deep supervision (one
    full-resolution output).  num_classes: the head's classes (classifier default 1000, U-Mamba 2).
    checkpoint: a weights file read by `load_pretrained` (never unpickles code; sha256 checked if given).
    """
    positive_int("build_model", "img_size", img_size)
    positive_int("build_model", "in_chans", in_chans)
    if name in SEGMENTATION:
        model = SEGMENTATION[name](spatial_dims, in_chans, 2 if num_classes is None else num_classes,
                                   **{"deep_supervision": False, **kwargs})
    elif name in dict(list_models()):
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        kwargs["in_chans"] = in_chans
        try:
            model = timm.create_model(name, img_size=img_size, **kwargs)
        except TypeError as e:   # VMamba, MambaOut: no img_size argument, any input size
            if "img_size" not in str(e):
                raise
            model = timm.create_model(name, **kwargs)
    else:
        close = difflib.get_close_matches(name, exportable_models(), n=3)
        raise ValueError(f"build_model: model={name!r} is not a model of the zoo"
                         + (f"; did you mean {', '.join(close)}?" if close else "")
                         + " (vision_mamba.export.exportable_models() lists them)")
    if checkpoint is not None:
        load_pretrained(model, checkpoint, sha256=sha256)
    return use_plain_ops(model).eval()


def example_input(model: nn.Module, img_size: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random input of the shape `model` takes at img_size (2-D or 3-D), on the model's device."""
    positive_int("example_input", "batch", batch)
    spatial_dims = getattr(model, "spatial_dims", 2)
    channels = getattr(model, "in_channels", None) or next(
        m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))).in_channels
    param = next(model.parameters())
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, *(img_size,) * spatial_dims, generator=g)
    return x.to(param.device, param.dtype)


def export_program(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True) -> torch.export.ExportedProgram:
    """torch.export of model(example), the batch dimension dynamic (1 ... 4096).  The example batch must
    be >= 2: torch.export specialises a dimension traced at size 1."""
    if dynamic_batch and example.shape[0] < 2:
        raise ValueError(f"export_program: example has batch {example.shape[0]}, expected >= 2 for a dynamic "
                         f"batch size (a size-1 dimension is specialised to 1)")
    shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    with torch.no_grad():
        return torch.export.export(model.eval(), (example,), dynamic_shapes=shapes)


def export_model(model: nn.Module, example: torch.Tensor, fmt: str, output: str | os.PathLike,
                 dynamic_batch: bool = True, program: Optional[torch.export.ExportedProgram] = None) -> Path:
    """Write `model` (traced on `example`) as fmt "onnx" (.onnx) or "torch_export" (.pt2) to `output`;
    returns the path.  `program`: an ExportedProgram of the same model to reuse instead of re-tracing."""
    if fmt not in FORMATS:
        raise ValueError(f"export_model: fmt={fmt!r}, expected one of {sorted(FORMATS)}")
    output = Path(output)
    if output.suffix != FORMATS[fmt]:
        raise ValueError(f"export_model: output={str(output)!r}, expected a {FORMATS[fmt]} file for fmt={fmt!r}")
    output.parent.mkdir(parents=True, exist_ok=True)
    program = program or export_program(model, example, dynamic_batch)
    if fmt == "torch_export":
        torch.export.save(program, str(output))
        return output
    onnx_program = torch.onnx.export(program, (example,), dynamo=True, input_names=["image"], verbose=False)
    onnx_program.save(str(output))
    return output


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in fp64."""
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-300)).item()


def _outputs(y: Any) -> list[torch.Tensor]:
    return list(y) if isinstance(y, (list, tuple)) else [y]


def verify_onnx(path: str | os.PathLike, model: nn.Module, inputs: Sequence[torch.Tensor] | torch.Tensor,
                threads: Optional[int] = None) -> float:
    """The ONNX file run by onnxruntime (CPU) on each input, against `model` in PyTorch: the largest
    relative error over inputs and outputs.  Give inputs of several batch sizes to check that the batch
    dimension is dynamic."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in [inputs] if isinstance(inputs, torch.Tensor) else inputs:
        with torch.no_grad():
            expected = _outputs(model(x))
        got = session.run(None, {name: x.detach().cpu().numpy()})
        if len(got) != len(expected):
            raise AssertionError(f"verify_onnx: {len(got)} ONNX outputs, PyTorch gives {len(expected)}")
        for g, e in zip(got, expected):
            worst = max(worst, rel_error(torch.from_numpy(g), e))
    return worst


# what torch.export.save writes for plain-tensor programs; anything else is refused by load_exported
_PICKLE_FREE_CONSTANT = "tensor_"


def _check_pt2(path: Path) -> None:
    """Refuse an archive that would make torch.export.load unpickle without weights_only (module docstring)."""
    def refuse(why: str):
        raise CheckpointError(f"exported program {str(path)!r} refused: {why}. Nothing of it was executed; "
                              f"load only .pt2 files you produced (torch.export.load is not weights-only)")

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"exported program {str(path)!r} is not a readable .pt2 archive "
                              f"(truncated or corrupted?): {e}") from e
    with archive:
        names = archive.namelist()
        bad = archive.testzip()   # CRC of every member: a truncated or modified archive fails here
        if bad is not None:
            raise CheckpointError(f"exported program {str(path)!r}: member {bad!r} fails its CRC check "
                                  f"(corrupted or modified)")
        configs = [n for n in names if n.endswith("_config.json") and "/data/" in n]
        if not configs:
            refuse("it has no weights/constants config (a legacy or foreign archive)")
        for name in configs:
            for fqn, payload in json.loads(archive.read(name))["config"].items():
                if payload.get("use_pickle"):
                    refuse(f"{fqn} is stored as a pickle")
                if "/constants/" in name and not payload.get("path_name", "").startswith(_PICKLE_FREE_CONSTANT):
                    refuse(f"constant {fqn} is a pickled object ({payload.get('path_name')})")
        for name in (n for n in names if n.endswith(".pt")):
            if "/data/weights/" in name or "/data/constants/" in name:
                refuse(f"{name} is a legacy pickled weights file")
            else:   # sample inputs: torch.export.load falls back to weights_only=False where this fails
                try:
                    torch.load(io.BytesIO(archive.read(name)), weights_only=True)
                except Exception as e:  # noqa: BLE001 - any refusal means the fallback would unpickle it
                    refuse(f"{name} does not load with weights_only=True ({type(e).__name__})")


def load_exported(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """torch.export.load, after `_check_pt2` has refused anything that would unpickle code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_exported: {str(path)!r} does not exist or is not a file")
    _check_pt2(path)
    return torch.export.load(str(path))


def verify_program(program: torch.export.ExportedProgram, model: nn.Module,
                   inputs: Sequence[torch.Tensor] | torch.Tensor) -> float:
    """program.module() against `model` on each input: the largest relative error."""
    module = program.module()
    worst = 0.0
    for x in [inputs] if isinstance(inputs, torch.Tensor) else inputs:
        with torch.no_grad():
            for g, e in zip(_outputs(module(x)), _outputs(model(x))):
                worst = max(worst, rel_error(g, e))
    return worst


def export_and_verify(name: str, fmt: str, img_size: int, output: str | os.PathLike, *,
                      num_classes: Optional[int] = None, in_chans: int = 3, spatial_dims: int = 2,
                      checkpoint: Optional[str] = None, sha256: Optional[str] = None,
                      verify_batches: Sequence[int] = (1, 3), verify: bool = True) -> dict[str, Any]:
    """What tools/export.py does: build, export, then (verify=True) run the file back at the
    verify_batches sizes against PyTorch.  Returns a summary dict (path, sizes, max_rel_error)."""
    model = build_model(name, img_size, num_classes=num_classes, in_chans=in_chans, spatial_dims=spatial_dims,
                        checkpoint=checkpoint, sha256=sha256)
    path = export_model(model, example_input(model, img_size), fmt, output)
    summary: dict[str, Any] = dict(model=name, format=fmt, output=str(path), bytes=path.stat().st_size,
                                   input_shape=["batch", *example_input(model, img_size, 1).shape[1:]],
                                   dynamic_batch=True)
    if verify:
        inputs = [example_input(model, img_size, b, seed=1 + b) for b in verify_batches]
        err = (verify_onnx(path, model, inputs) if fmt == "onnx"
               else verify_program(load_exported(path), model, inputs))
        summary.update(verified_batches=list(verify_batches), max_rel_error=err)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """tools/export.py: export one model, check the file against PyTorch, print a JSON summary."""
    import argparse

    parser = argparse.ArgumentParser(
        description="Export a model of the zoo to ONNX or torch.export (.pt2) with a dynamic batch size, then "
                    "run the file back (onnxruntime / torch.export.load) at other batch sizes against PyTorch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="a classifier of the zoo, or umamba_bot / umamba_enc")
    parser.add_argument("--format", dest="fmt", required=True, choices=sorted(FORMATS))
    parser.add_argument("--img-size", type=int, default=224, help="the resolution the file is traced at")
    parser.add_argument("--output", default=None, help="output file (default: exports/<model>_<img-size><ext>)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--in-chans", type=int, default=3)
    parser.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3), help="U-Mamba only")
    parser.add_argument("--checkpoint", default=None, help="weights (safetensors, or a torch file read with "
                        "weights_only=True); official release files work too")
    parser.add_argument("--sha256", default=None, help="expected sha256 of --checkpoint")
    parser.add_argument("--verify-batches", type=int, nargs="+", default=[1, 3],
                        help="batch sizes the exported file is checked at (the trace uses batch 2)")
    parser.add_argument("--no-verify", action="store_true", help="skip the check")
    args = parser.parse_args(argv)
    output = args.output or f"exports/{args.model}_{args.img_size}{FORMATS[args.fmt]}"
    summary = export_and_verify(args.model, args.fmt, args.img_size, output, num_classes=args.num_classes,
                                in_chans=args.in_chans, spatial_dims=args.spatial_dims, checkpoint=args.checkpoint,
                                sha256=args.sha256, verify_batches=args.verify_batches, verify=not args.no_verify)
    print(json.dumps(summary, indent=1))
    return 0
