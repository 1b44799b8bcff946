"""CIFAR-10 and CIFAR-100 in their original format (pickled batches), read by an unpickler that
builds nothing but what such a batch holds; downloaded through torchvision when absent. A folder
that already holds the format is used as it is, even a subset whose checksums differ from the
full set's."""

import pickle
from pathlib import Path

import torch

from prunesearch.errors import DataError

BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
CIFAR100_DIR = "cifar-100-python"
CIFAR100_CLASSES = 100


class _BatchUnpickler(pickle.Unpickler):
    """Builds only what a CIFAR batch holds (a dict of strings, lists and numpy arrays): any
    other global a pickle names is refused before it is called, so a crafted file in a shared
    data folder runs no code. (torch.load's weights_only does the same for weights.)"""

    ALLOWED = {(module, name)
               for core in ("numpy.core", "numpy._core")  # numpy 1 and 2 name them so
               for module, name in ((f"{core}.multiarray", "_reconstruct"),
                                    (f"{core}.multiarray", "scalar"),
                                    (f"{core}.numeric", "_frombuffer"))}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"),
                ("_codecs", "encode")}  # bytes, as Python 3 writes them at protocol 2

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch "
                                         "never holds; refused without running it")
        return super().find_class(module, name)


def unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _BatchUnpickler(f, encoding="latin1").load()


def read_batch(path: Path, *, labels_key: str = "labels", num_classes: int = 10
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled batch file -> (uint8 N x 3 x 32 x 32 images, int64 labels)."""
    what = "CIFAR-10" if num_classes == 10 else "CIFAR-100"
    try:
        batch = unpickle(path)
        images = torch.as_tensor(batch["data"], dtype=torch.uint8).reshape(-1, 3, 32, 32)
        labels = torch.as_tensor(batch[labels_key], dtype=torch.int64)
    except FileNotFoundError:
        holds = (f"a {BATCHES_DIR} folder holds {', '.join(TRAIN_FILES)} and {TEST_FILE}"
                 if num_classes == 10 else f"a {CIFAR100_DIR} folder holds train and test")
        raise DataError(f"{path}: missing; {holds}") from None
    except Exception as error:
        raise DataError(f"{path}: not a {what} batch ({type(error).__name__}: {error}); "
                        f"expected a pickled dict with 'data' (N x 3072 uint8) and "
                        f"'{labels_key}'") from None
    if len(images) != len(labels) or len(labels) == 0:
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels; "
                        "expected the same number, at least one")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"{path}: labels outside 0..{num_classes - 1}")
    return images, labels


def find(data_dir: Path, folder: str, marker: str) -> Path | None:
    """`data_dir/folder`, or `data_dir` itself if it is that folder (holds `marker`)."""
    for candidate in (Path(data_dir) / folder, Path(data_dir)):
        if (candidate / marker).exists():
            return candidate
    return None


def find_batches_dir(data_dir: Path) -> Path | None:
    """`data_dir/cifar-10-batches-py`, or `data_dir` itself if it is that folder."""
    return find(data_dir, BATCHES_DIR, TEST_FILE) or find(data_dir, BATCHES_DIR, TRAIN_FILES[0])


def download(data_dir: Path, dataset: str, folder: str) -> Path:
    """Fetch the full set through torchvision (checksum-verified) into `data_dir`."""
    import torchvision

    try:
        for train in (True, False):
            getattr(torchvision.datasets, dataset)(root=str(data_dir), train=train,
                                                   download=True)
    except Exception as error:  # URLError, socket timeouts, HTTP errors: all mean "no data"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"{dataset.replace('CIFAR', 'CIFAR-')} not found in {data_dir} (looked for "
            f"{data_dir / folder}) and downloading it failed ({reason}); pass --data-dir or "
            f"set PRUNESEARCH_DATA_DIR to a folder that holds {folder}") from None
    return Path(data_dir) / folder


def cifar10(data_dir: Path) -> tuple[Path, tuple, tuple, tuple[str, ...]]:
    """(folder, training (images, labels), test (images, labels), class names)."""
    batches_dir = find_batches_dir(data_dir) or download(data_dir, "CIFAR10", BATCHES_DIR)
    train = [read_batch(batches_dir / name) for name in TRAIN_FILES]
    test = read_batch(batches_dir / TEST_FILE)
    return (batches_dir, (torch.cat([x for x, _ in train]), torch.cat([y for _, y in train])),
            test, CIFAR10_CLASSES)


def cifar100(data_dir: Path) -> tuple[Path, tuple, tuple, tuple[str, ...]]:
    """CIFAR-100 with its 100 fine labels: (folder, training, test, class names)."""
    folder = find(data_dir, CIFAR100_DIR, "train") or download(data_dir, "CIFAR100",
                                                               CIFAR100_DIR)
    read = lambda name: read_batch(folder / name, labels_key="fine_labels",
                                   num_classes=CIFAR100_CLASSES)
    try:
        classes = tuple(unpickle(folder / "meta")["fine_label_names"])
    except Exception:  # a folder without its meta file still trains; the classes get numbers
        classes = tuple(str(i) for i in range(CIFAR100_CLASSES))
    return folder, read("train"), read("test"), classes
