"""Classification data on timm's components: datasets (`create_dataset`), transforms
(`create_transform`), mixup/cutmix (`Mixup`), plus the two pieces exact resumption needs:

* a sampler whose order depends only on (seed, epoch) and that can start mid-epoch, and
* per-sample augmentation seeds derived from (seed, epoch, index), so that an image is augmented the
  same way whichever worker loads it and whether or not the run was interrupted before it.
"""
from __future__ import annotations

import gzip
import itertools
import os
import random
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from timm.data import create_dataset, create_transform

# Debian's dataset-fashion-mnist (see README): the gzipped idx files torchvision's FashionMNIST reads
# once decompressed into <root>/FashionMNIST/raw
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEFAULT_DATA_ROOT = Path(os.environ.get("VISION_MAMBA_DATA", Path.home() / ".cache" / "vision_mamba" / "data"))


def prepare_fashion_mnist(root: Path, source: Path = DEBIAN_FASHION_MNIST) -> Path:
    """Lay the Debian package's files out where torchvision's FashionMNIST(root) looks (no download)."""
    raw = Path(root) / "FashionMNIST" / "raw"
    if all((raw / name).is_file() for name in _FASHION_FILES):
        return Path(root)
    missing = [name for name in _FASHION_FILES if not (source / f"{name}.gz").is_file()]
    if missing:
        raise FileNotFoundError(
            f"dataset 'torch/fashion_mnist': {', '.join(missing)} found neither under {str(raw)!r} nor as "
            f"{str(source)}/<name>.gz; install the Debian package (apt-get install -y dataset-fashion-mnist) "
            f"or put the four idx files in {str(raw)!r}")
    raw.mkdir(parents=True, exist_ok=True)
    for name in _FASHION_FILES:
        tmp = raw / f".{name}.tmp"
        with gzip.open(source / f"{name}.gz") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, raw / name)
    return Path(root)


def build_dataset(name: str, data_dir: Optional[str], split: str):
    """timm's create_dataset: '' = an ImageNet-style folder (data_dir/train, data_dir/val), or a timm
    dataset name ('torch/cifar10', ...).  torch/fashion_mnist comes from the Debian package offline."""
    if name.lower() == "torch/fashion_mnist":
        data_dir = str(prepare_fashion_mnist(Path(data_dir) if data_dir else DEFAULT_DATA_ROOT))
    if not data_dir:
        raise ValueError(f"data_dir is required for dataset {name!r} (an ImageNet-style folder with "
                         f"train/ and val/ subfolders, or the root of a timm dataset)")
    if not name and not Path(data_dir).is_dir():
        raise FileNotFoundError(f"data_dir {data_dir!r}: no such directory (expected train/ and val/ "
                                f"class folders)")
    try:
        return create_dataset(name, root=data_dir, split=split, search_split=True, download=False)
    except (RuntimeError, FileNotFoundError, AssertionError) as e:
        raise FileNotFoundError(f"dataset {name or 'image folder'!r}, split {split!r} under {data_dir!r}: "
                                f"{e}") from e


class SeededTransforms(Dataset):
    """Applies `transform` to dataset[i] under RNG seeds derived from (seed, epoch, i): the
    augmentation of a sample depends on nothing else (worker, order, interruption)."""

    def __init__(self, dataset, transform, seed: int):
        self.dataset, self.transform, self.seed, self.epoch = dataset, transform, seed, 0
        # timm's torchvision-backed datasets apply their own .transform; we apply ours here instead
        if hasattr(dataset, "transform"):
            dataset.transform = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, target = self.dataset[index]
        sample_seed = hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF
        # only the CPU generator and Python's `random` (what timm's transforms draw from); seeding them
        # directly costs microseconds where torch.manual_seed / fork_rng visit every device backend
        cpu_state, py_state = torch.default_generator.get_state(), random.getstate()
        torch.default_generator.manual_seed(sample_seed)
        random.seed(sample_seed)
        try:
            image = self.transform(image)
        finally:
            torch.default_generator.set_state(cpu_state)
            random.setstate(py_state)
        return image, target


class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for one process) whose order is a function of (seed, epoch) and which
    can skip the batches an interrupted run already consumed."""

    def __init__(self, dataset, num_replicas: int, rank: int, shuffle: bool, seed: int, drop_last: bool):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_position(self, epoch: int, samples_done: int) -> None:
        self.set_epoch(epoch)
        self.start = samples_done

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation shards rank::world — no padding, so every image is counted exactly once."""

    def __init__(self, length: int, num_replicas: int, rank: int):
        self.indices = range(rank, length, num_replicas)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def train_transform(cfg) -> object:
    return create_transform(
        tuple(cfg.input_size), is_training=True, scale=tuple(cfg.scale), ratio=tuple(cfg.ratio),
        hflip=cfg.hflip, color_jitter=cfg.color_jitter, auto_augment=cfg.aa or None,
        interpolation=cfg.interpolation, mean=tuple(cfg.mean), std=tuple(cfg.std),
        re_prob=cfg.reprob, re_mode=cfg.remode, re_count=cfg.recount)


def eval_transform(cfg) -> object:
    return create_transform(tuple(cfg.input_size), is_training=False, interpolation=cfg.interpolation,
                            mean=tuple(cfg.mean), std=tuple(cfg.std), crop_pct=cfg.crop_pct)


def make_loader(dataset, sampler, batch_size: int, workers: int, drop_last: bool, pin_memory: bool,
                seed: int = 0) -> DataLoader:
    # the loader's own generator: creating an iterator must not draw from the global RNG (a resumed
    # run creates one at a different point than an uninterrupted run, and would diverge)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=drop_last, pin_memory=pin_memory, persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed))


def make_random_image_folder(root: str | os.PathLike, classes: int = 4, per_class: int = 8,
                             size: int = 64, splits=("train", "val"), seed: int = 0) -> Path:
    """An ImageNet-style folder of random RGB JPEGs (root/<split>/<class>/<i>.jpg): for smoke tests
    and throughput runs where the content does not matter."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for split in splits:
        for c in range(classes):
            folder = root / split / f"class_{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)
    return root
