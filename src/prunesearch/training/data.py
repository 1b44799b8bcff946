"""CIFAR-10 held in memory as uint8 tensors, split, and served as augmented float batches.

The images are read once from the original `cifar-10-batches-py` format (downloaded through
torchvision when absent). A folder that already holds that format is used as it is, even a
subset whose checksums differ from the full set's. Augmentation (random crop with 4 pixels of
zero padding, horizontal flip) runs on whole batches of tensors, not image by image.
"""

import functools
import hashlib
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from prunesearch.errors import DataError
from prunesearch.foundation import interrupts

BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
NUM_CLASSES = 10
# Per-channel mean and std of the CIFAR-10 training images, in [0, 1] units.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
CROP_PADDING = 4  # pixels


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, N x 3 x 32 x 32
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class CifarData:
    train: Split
    val: Split
    test: Split
    fingerprint: str  # hash of the raw images and labels: identifies the data in cache keys

    def to(self, device) -> "CifarData":
        return CifarData(self.train.to(device), self.val.to(device), self.test.to(device),
                         self.fingerprint)


def default_data_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "prunesearch" / "data"


def find_batches_dir(data_dir: Path) -> Path | None:
    """`data_dir/cifar-10-batches-py`, or `data_dir` itself if it is that folder."""
    for candidate in (Path(data_dir) / BATCHES_DIR, Path(data_dir)):
        if (candidate / TEST_FILE).exists() or (candidate / TRAIN_FILES[0]).exists():
            return candidate
    return None


def download(data_dir: Path) -> Path:
    """Fetch the full set through torchvision (checksum-verified) into `data_dir`."""
    import torchvision

    try:
        for train in (True, False):
            torchvision.datasets.CIFAR10(root=str(data_dir), train=train, download=True)
    except Exception as error:  # URLError, socket timeouts, HTTP errors: all mean "no data"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"CIFAR-10 not found in {data_dir} (looked for {data_dir / BATCHES_DIR}) and "
            f"downloading it failed ({reason}); pass --data-dir or set PRUNESEARCH_DATA_DIR "
            f"to a folder that holds {BATCHES_DIR}, e.g. extracted from cifar-10-python.tar.gz"
        ) from None
    return Path(data_dir) / BATCHES_DIR


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what a CIFAR-10 batch holds (a dict of strings, lists and numpy arrays):
    any other global a pickle names is refused before it is called, so a crafted file in a
    shared data folder runs no code. (torch.load's weights_only does the same for weights.)"""

    ALLOWED = {(module, name)
               for core in ("numpy.core", "numpy._core")  # numpy 1 and 2 name them so
               for module, name in ((f"{core}.multiarray", "_reconstruct"),
                                    (f"{core}.multiarray", "scalar"),
                                    (f"{core}.numeric", "_frombuffer"))}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # bytes, as Python 3 writes them at protocol 2

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch "
                                         "never holds; refused without running it")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch file -> (uint8 N x 3 x 32 x 32 images, int64 labels)."""
    try:
        with open(path, "rb") as f:
            batch = _BatchUnpickler(f, encoding="latin1").load()
        images = torch.as_tensor(batch["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32)
        labels = torch.as_tensor(batch["labels"], dtype=torch.int64)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; a {BATCHES_DIR} folder holds "
                        f"{', '.join(TRAIN_FILES)} and {TEST_FILE}") from None
    except Exception as error:
        raise DataError(f"{path}: not a CIFAR-10 batch ({type(error).__name__}: {error}); "
                        "expected a pickled dict with 'data' (N x 3072 uint8) and 'labels'"
                        ) from None
    if len(images) != len(labels) or len(labels) == 0:
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels; "
                        "expected the same number, at least one")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"{path}: labels outside 0..{NUM_CLASSES - 1}")
    return images, labels


def read_batches_dir(batches_dir: Path) -> tuple[Split, Split]:
    """(training set, test set) from a `cifar-10-batches-py` folder."""
    train = [read_batch(batches_dir / name) for name in TRAIN_FILES]
    test = read_batch(batches_dir / TEST_FILE)
    return (Split(torch.cat([x for x, _ in train]), torch.cat([y for _, y in train])),
            Split(*test))


def fingerprint(*splits: Split) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for split in splits:
        # The arrays' own memory, not a copy (tobytes() would briefly double the data set).
        digest.update(split.images.contiguous().numpy())
        digest.update(split.labels.contiguous().numpy())
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


def load(*, data_dir: Path, val_size: int | float, train_subset: int | None,
         seed: int) -> CifarData:
    """Read (or download) CIFAR-10, hold out a stratified validation split from the training
    set, then optionally keep a stratified subset of the rest for training."""
    batches_dir, (full_train, test) = _read(data_dir)
    generator = torch.Generator().manual_seed(seed)
    n_val = holdout_count(val_size, len(full_train))
    if not 1 <= n_val < len(full_train):
        raise DataError(f"data.val_size = {val_size!r} holds out {n_val} of the "
                        f"{len(full_train)} training images in {batches_dir}; "
                        "it must leave at least one for training")
    val_index, train_index = stratified_split(full_train.labels, n_val, generator)
    if train_subset is not None:
        if train_subset > len(train_index):
            raise DataError(f"data.train_subset = {train_subset} but only {len(train_index)} "
                            f"training images remain in {batches_dir} after validation")
        keep, _ = stratified_split(full_train.labels[train_index], train_subset, generator)
        train_index = train_index[keep]
    return CifarData(
        train=Split(full_train.images[train_index], full_train.labels[train_index]),
        val=Split(full_train.images[val_index], full_train.labels[val_index]),
        test=test,
        fingerprint=fingerprint(full_train, test),
    )


def load_test(data_dir: Path) -> Split:
    """Only the test batch: what exporting a trial checks its accuracy on."""
    return _read(data_dir)[1][1]


def _read(data_dir: Path) -> tuple[Path, tuple[Split, Split]]:
    """The batches folder, and (training set, test set) read from it, downloaded first if
    needed. This writes to no store, so a stop request ends it at once (a download takes
    minutes)."""
    with interrupts.abortable():
        batches_dir = find_batches_dir(data_dir) or download(data_dir)
        return batches_dir, read_batches_dir(batches_dir)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float, zero mean and unit variance per channel, channels_last.

    channels_last inputs make the convolutions run in that layout (weights stay NCHW, as
    torch.nn.utils.prune needs): faster on CPU, see benchmarks/speed.py (h) and the README's
    Performance section.
    """
    mean, std = _mean_std(images.device)
    return ((images.float() - mean) / std).contiguous(memory_format=torch.channels_last)


@functools.cache
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """MEAN and STD in uint8 units on `device`, made once: a tensor built from Python numbers
    for every batch would be a host-to-GPU copy at every step."""
    return (torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255,
            torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255)


def generator_on(device: torch.device | str, seed: int) -> torch.Generator:
    """A seeded generator on `device`: batches drawn with it on a GPU never wait for the host
    (a CPU generator's numbers would be copied to the GPU at every step)."""
    return torch.Generator(device=device).manual_seed(seed)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, a whole batch at once; the
    random numbers are drawn on the images' device, with `generator` (on that device)."""
    n, c, h, w = images.shape
    pad = CROP_PADDING
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
        yield normalize(images), split.labels[index]


def eval_batches(split: Split, *, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(split), batch_size):
        yield (normalize(split.images[start:start + batch_size]),
               split.labels[start:start + batch_size])
