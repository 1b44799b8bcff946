"""The images a study trains on, held in memory as uint8 tensors (memory-mapped from the
cache for image folders), split, and served as augmented, normalised float batches.

Sources (training.sources): CIFAR-10 (the default) and CIFAR-100 in their original format,
image folders in torchvision's layout, and the user's own data sets. Every source is fitted
once to one square image size; augmentation (random crop with zero padding of an eighth of
the size, 4 pixels at 32, and horizontal flip) runs on whole batches of tensors, not image by
image.
"""

import functools
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from prunesearch.errors import DataError
from prunesearch.foundation import interrupts
from prunesearch.training.sources import cifar, folder, user

log = logging.getLogger(__name__)

SOURCES = ("cifar10", "cifar100", "imagefolder")  # or a data set of the user's, module:callable
# Per-channel mean and std of the CIFAR-10 training images, in [0, 1] units.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, N x 3 x S x S
    labels: torch.Tensor  # int64, N
    mean: tuple[float, float, float] = MEAN  # normalisation, in [0, 1] units: the data set's
    std: tuple[float, float, float] = STD

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def to(self, device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device), self.mean, self.std)

    def inputs(self, index) -> torch.Tensor:
        """The images at `index` (a slice or indices) as the model reads them."""
        return normalize(self.images[index], self.mean, self.std)


@dataclass(frozen=True)
class ImageData:
    train: Split
    val: Split
    test: Split
    fingerprint: str  # hash of the raw images and labels: identifies the data in cache keys
    classes: tuple[str, ...] = field(default=tuple(str(i) for i in range(10)))
    where: str = ""  # the folder (or callable) it was read from, as the user would find it
    unreadable: int = 0  # image files skipped as unreadable (data.skip_unreadable)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.train.image_size

    def to(self, device) -> "ImageData":
        return ImageData(self.train.to(device), self.val.to(device), self.test.to(device),
                         self.fingerprint, self.classes, self.where, self.unreadable)


def default_data_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "prunesearch" / "data"


def fingerprint(*splits: tuple[torch.Tensor, torch.Tensor]) -> str:
    """Of (images, labels) pairs: the arrays' own memory, not a copy (tobytes() would briefly
    double the data set)."""
    digest = hashlib.blake2b(digest_size=16)
    for images, labels in splits:
        digest.update(images.contiguous().numpy())
        digest.update(labels.contiguous().numpy())
    return digest.hexdigest()


def stratified_split(labels: torch.Tensor, n_first: int, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (first, rest) with `n_first` indices in `first`, each class in proportion.

    Per-class quotas are rounded down, then the leftover places go to the classes with the
    largest remainders, so the total is exact.
    """
    classes, counts = labels.unique(return_counts=True)
    exact = counts.double() * n_first / len(labels)
    quota = exact.floor().long()
    leftover = n_first - int(quota.sum())
    quota[torch.argsort(exact - quota, descending=True)[:leftover]] += 1
    first, rest = [], []
    for cls, k in zip(classes.tolist(), quota.tolist()):
        index = (labels == cls).nonzero().flatten()
        index = index[torch.randperm(len(index), generator=generator)]
        first.append(index[:k])
        rest.append(index[k:])
    return torch.cat(first).sort().values, torch.cat(rest).sort().values


def holdout_count(size: int | float, total: int) -> int:
    """`size` images, or that fraction of `total` when it is a float in (0, 1)."""
    return round(size * total) if isinstance(size, float) else size


def load(*, data_dir: Path, val_size: int | float, train_subset: int | None, seed: int,
         source: str = "cifar10", path: Path | None = None, image_size: int | None = None,
         mean: tuple | None = None, std: tuple | None = None, cache_dir: Path | None = None,
         skip_unreadable: bool = False) -> ImageData:
    """Read `source` (CIFAR from `data_dir`; an image folder at `path`; module:callable), fit
    it to `image_size`, take its validation split (the source's own, or held out of the
    training set, stratified), then optionally keep a stratified subset of the rest for
    training. `mean`/`std` default to CIFAR-10's for CIFAR-10, else the training images' own.
    Reading writes to no store, so a stop request ends it at once."""
    with interrupts.abortable():
        where, classes, splits, unreadable = _read(source, data_dir=data_dir, path=path,
                                                   image_size=image_size, cache_dir=cache_dir,
                                                   skip_unreadable=skip_unreadable)
    generator = torch.Generator().manual_seed(seed)
    full_train = splits["train"]
    test = splits["test"] if "test" in splits else splits["val"]
    if "val" in splits and "test" in splits:
        val, train_index = splits["val"], None
    else:  # the other split is the reported test split; validation is held out of train
        n_val = holdout_count(val_size, len(full_train[1]))
        if not 1 <= n_val < len(full_train[1]):
            raise DataError(f"data.val_size = {val_size!r} holds out {n_val} of the "
                            f"{len(full_train[1])} training images in {where}; "
                            "it must leave at least one for training")
        val_index, train_index = stratified_split(full_train[1], n_val, generator)
        val = full_train[0][val_index], full_train[1][val_index]
    if train_subset is not None:
        train_index = torch.arange(len(full_train[1])) if train_index is None else train_index
        if train_subset > len(train_index):
            raise DataError(f"data.train_subset = {train_subset} but only {len(train_index)} "
                            f"training images remain in {where} after validation")
        keep, _ = stratified_split(full_train[1][train_index], train_subset, generator)
        train_index = train_index[keep]
    # The whole training folder stays as it was read: memory-mapped from the cache, not copied.
    train = full_train if train_index is None else (full_train[0][train_index],
                                                    full_train[1][train_index])
    if mean is None or std is None:
        own_mean, own_std = (MEAN, STD) if source == "cifar10" else channel_stats(train[0])
        mean, std = mean or own_mean, std or own_std
    made = {name: Split(*pair, tuple(mean), tuple(std))
            for name, pair in (("train", train), ("val", val), ("test", test))}
    return ImageData(**made, fingerprint=fingerprint(*splits.values()), classes=classes,
                     where=str(where), unreadable=unreadable)


def _read(source: str, *, data_dir: Path, path: Path | None, image_size: int | None,
          cache_dir: Path | None, skip_unreadable: bool):
    """(where, classes, {split: (images, labels)}, unreadable count) of `source`."""
    if source in ("cifar10", "cifar100"):
        where, train, test, classes = getattr(cifar, source)(path or data_dir)
        splits = {"train": train, "test": test}
        if image_size not in (None, 32):
            splits = {name: (resized(images, image_size), labels)
                      for name, (images, labels) in splits.items()}
        return where, classes, splits, 0
    if source == "imagefolder":
        classes, splits, unreadable = folder.read(path, image_size=image_size,
                                                  cache_dir=cache_dir,
                                                  skip_unreadable=skip_unreadable)
        return path, classes, splits, unreadable
    classes, splits = user.read(source, image_size=image_size)
    return source, classes, splits, 0


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized (bilinear, antialiased) to `size` x `size`, a chunk at a time."""
    return torch.cat([F.interpolate(images[start:start + 1024].float(), size=(size, size),
                                    mode="bilinear", antialias=True, align_corners=False
                                    ).round_().clamp_(0, 255).to(torch.uint8)
                      for start in range(0, len(images), 1024)])


def channel_stats(images: torch.Tensor) -> tuple[tuple, tuple]:
    """Per-channel mean and std of uint8 images, in [0, 1] units, a chunk at a time (sums in
    float64 across chunks; each chunk's pixels as float32, so that a chunk costs 4 bytes per
    pixel, not 8)."""
    total = torch.zeros(3, dtype=torch.float64)
    squares = torch.zeros(3, dtype=torch.float64)
    for start in range(0, len(images), 256):
        chunk = images[start:start + 256].float().div_(255)
        total += chunk.sum(dim=(0, 2, 3), dtype=torch.float64)
        squares += chunk.square_().sum(dim=(0, 2, 3), dtype=torch.float64)
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def load_test(data_dir: Path, **source) -> Split:
    """Only the test split: what exporting a trial checks its accuracy on."""
    return load(data_dir=data_dir, val_size=1, train_subset=None, seed=0, **source).test


def normalize(images: torch.Tensor, mean: tuple = MEAN, std: tuple = STD) -> torch.Tensor:
    """uint8 images -> float, zero mean and unit variance per channel, channels_last.

    channels_last inputs make the convolutions run in that layout (weights stay NCHW, as
    torch.nn.utils.prune needs): faster on CPU, see benchmarks/speed.py (h) and the README's
    Performance section.
    """
    mean, std = _mean_std(images.device, tuple(mean), tuple(std))
    return ((images.float() - mean) / std).contiguous(memory_format=torch.channels_last)


@functools.cache
def _mean_std(device: torch.device, mean: tuple, std: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """`mean` and `std` in uint8 units on `device`, made once: a tensor built from Python
    numbers for every batch would be a host-to-GPU copy at every step."""
    return (torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255,
            torch.tensor(std, device=device).view(1, 3, 1, 1) * 255)


def generator_on(device: torch.device | str, seed: int) -> torch.Generator:
    """A seeded generator on `device`: batches drawn with it on a GPU never wait for the host
    (a CPU generator's numbers would be copied to the GPU at every step)."""
    return torch.Generator(device=device).manual_seed(seed)


def crop_padding(image_size: int) -> int:
    """The random crop's zero padding: an eighth of the size (4 pixels at 32, CIFAR's)."""
    return max(1, round(image_size / 8))


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, a whole batch at once; the
    random numbers are drawn on the images' device, with `generator` (on that device)."""
    n, c, h, w = images.shape
    pad = crop_padding(w)
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad))
    shift_y = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    shift_x = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    rows = shift_y[:, None] + torch.arange(h, device=device)
    cols = shift_x[:, None] + torch.arange(w, device=device)
    cropped = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    cropped = cropped.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return torch.where(flip[:, None, None, None], cropped.flip(3), cropped)


def train_batches(split: Split, *, batch_size: int, generator: torch.Generator,
                  augmented: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled, normalised (and augmented) batches; the last partial batch is
    kept so that tiny data sets still train. `generator` lives on the split's device."""
    order = torch.randperm(len(split), generator=generator, device=split.labels.device)
    for start in range(0, len(split), batch_size):
        index = order[start:start + batch_size]
        images = split.images[index]
        if augmented:
            images = augment(images, generator)
        yield normalize(images, split.mean, split.std), split.labels[index]


def eval_batches(split: Split, *, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(split), batch_size):
        yield split.inputs(slice(start, start + batch_size)), split.labels[start:start + batch_size]
