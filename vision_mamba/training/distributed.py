"""torchrun plumbing: one process per device, NCCL on GPUs, gloo on CPU; rank 0 logs and saves."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    enabled: bool = False   # a process group exists (any launch by torchrun, even of one process)

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto") -> Dist:
    """Reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).  Under torchrun a process group is made
    even for one process, so that `torchrun --nproc_per_node 1` runs the same DDP / NCCL code as many; a
    plain `python` run has none."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r}, expected 'auto', 'cpu' or 'cuda'")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but torch.cuda.is_available() is False")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    launched = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if launched and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                device_id=dev if use_cuda else None)
    return Dist(rank, world, local_rank, dev, enabled=dist.is_initialized())


def all_sum(values: list[float], d: Dist) -> list[float]:
    """Element-wise sum over ranks (float64 on the process group's device)."""
    if not d.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_object(obj, d: Dist) -> list:
    if not d.enabled:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
