"""CIFAR-10 folders in the original format (pickled batches), made on the spot: small and
learnable for tests, or large and random for timing."""

import pickle
from pathlib import Path

import numpy as np

from prunesearch.training import data as data_module


def cifar_folder(folder: Path, *, per_batch: int = 50, test: int = 50, seed: int = 0) -> Path:
    """A cifar-10-batches-py folder in `folder`, 5 x `per_batch` training and `test` test
    images, whose classes differ in mean colour so that they are learnable. Returns `folder`."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(10, 3)).astype(np.float32)
    batches = folder / data_module.BATCHES_DIR
    batches.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict:
        labels = rng.permutation(np.arange(n) % 10)
        noise = rng.standard_normal(size=(n, 3, 32, 32), dtype=np.float32) * 30
        images = colours[labels][:, :, None, None] + noise
        return {"data": np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072),
                "labels": labels.tolist()}

    for name in data_module.TRAIN_FILES:
        (batches / name).write_bytes(pickle.dumps(batch(per_batch)))
    (batches / data_module.TEST_FILE).write_bytes(pickle.dumps(batch(test)))
    (batches / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    return folder


def random_cifar_folder(folder: Path, *, train: int, test: int = 10_000) -> Path:
    """A cifar-10-batches-py folder of `train` + `test` uniformly random images, for timing and
    memory only (nothing learns from it). Returns `folder`."""
    rng = np.random.default_rng(0)
    batches = folder / data_module.BATCHES_DIR
    batches.mkdir(parents=True, exist_ok=True)
    per_file = train // len(data_module.TRAIN_FILES)
    for name, count in [(n, per_file) for n in data_module.TRAIN_FILES] + [
            (data_module.TEST_FILE, test)]:
        images = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        (batches / name).write_bytes(pickle.dumps({"data": images,
                                                   "labels": (np.arange(count) % 10).tolist()}))
    return folder
