"""CIFAR-10 folders in the original format (pickled batches), made on the spot: small and
learnable for tests, or large and random for timing."""

import pickle
from pathlib import Path

import numpy as np

from prunesearch.training.sources import cifar


def cifar_folder(folder: Path, *, per_batch: int = 50, test: int = 50, seed: int = 0) -> Path:
    """A cifar-10-batches-py folder in `folder`, 5 x `per_batch` training and `test` test
    images, whose classes differ in mean colour so that they are learnable. Returns `folder`."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(10, 3)).astype(np.float32)
    batches = folder / cifar.BATCHES_DIR
    batches.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict:
        labels = rng.permutation(np.arange(n) % 10)
        noise = rng.standard_normal(size=(n, 3, 32, 32), dtype=np.float32) * 30
        images = colours[labels][:, :, None, None] + noise
        return {"data": np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072),
                "labels": labels.tolist()}

    for name in cifar.TRAIN_FILES:
        (batches / name).write_bytes(pickle.dumps(batch(per_batch)))
    (batches / cifar.TEST_FILE).write_bytes(pickle.dumps(batch(test)))
    (batches / "batches.meta").write_bytes(
        pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    return folder


def random_cifar_folder(folder: Path, *, train: int, test: int = 10_000) -> Path:
    """A cifar-10-batches-py folder of `train` + `test` uniformly random images, for timing and
    memory only (nothing learns from it). Returns `folder`."""
    rng = np.random.default_rng(0)
    batches = folder / cifar.BATCHES_DIR
    batches.mkdir(parents=True, exist_ok=True)
    per_file = train // len(cifar.TRAIN_FILES)
    for name, count in [(n, per_file) for n in cifar.TRAIN_FILES] + [
            (cifar.TEST_FILE, test)]:
        images = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        (batches / name).write_bytes(pickle.dumps({"data": images,
                                                   "labels": (np.arange(count) % 10).tolist()}))
    return folder


def image_folder(folder: Path, *, classes: int = 3, per_class: dict | None = None,
                 modes: tuple[str, ...] = ("RGB", "L", "RGBA", "P"),
                 formats: tuple[str, ...] = ("png", "jpg"), sizes: tuple = ((40, 30), (24, 48)),
                 seed: int = 0) -> Path:
    """An image folder in torchvision's layout in `folder`: `per_class` images per class in
    each split ({"train": 12, "val": 4, "test": 4} unless given; a split left out is not
    made), classes told apart by their mean colour, cycling through `modes` (RGB, grayscale,
    RGBA, palette), `formats` and `sizes`, with a README and a .DS_Store that are not images.
    Returns `folder`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(classes, 3))
    counts = per_class or {"train": 12, "val": 4, "test": 4}
    made = 0
    for split, count in counts.items():
        for label in range(classes):
            place = folder / split / f"class_{label:02d}"
            place.mkdir(parents=True, exist_ok=True)
            (place / ".DS_Store").write_bytes(b"\0\1not an image")
            for k in range(count):
                width, height = sizes[made % len(sizes)]
                pixels = colours[label] + rng.standard_normal((height, width, 3)) * 25
                picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
                mode = modes[made % len(modes)]
                picture = picture.convert(mode) if mode != "P" else picture.quantize(16)
                extension = formats[made % len(formats)]
                if extension == "jpg" and mode in ("RGBA", "P"):
                    extension = "png"  # JPEG holds neither
                picture.save(place / f"{k:03d}.{extension}")
                made += 1
    (folder / "README.md").write_text("images for a test\n")
    return folder


def cifar_as_image_folder(cifar_dir: Path, folder: Path, *, size: int = 32,
                          extension: str = "png", copies: int = 1, val_every: int = 0) -> Path:
    """A CIFAR-10 folder written out as an image folder in `folder`: train/ and test/ (and with
    `val_every` = k, val/ holding every k-th training image instead of train/), a folder per
    class, each image upscaled to `size` pixels (bicubic) and saved as `extension` (png or
    jpg), the training images `copies` times over (for a larger set). Returns `folder`."""
    from PIL import Image

    _, train, test, classes = cifar.cifar10(cifar_dir)
    for split, (images, labels) in (("train", train), ("test", test)):
        for name in classes:
            for made in ((split, "val") if split == "train" and val_every else (split,)):
                (folder / made / name).mkdir(parents=True, exist_ok=True)
        pixels = images.permute(0, 2, 3, 1).numpy()
        for copy in range(copies if split == "train" else 1):
            for index, (picture, label) in enumerate(zip(pixels, labels.tolist())):
                made = Image.fromarray(picture)
                if size != 32:
                    made = made.resize((size, size), Image.BICUBIC)
                into = "val" if split == "train" and val_every and index % val_every == 0 \
                    else split
                made.save(folder / into / classes[label] / f"{copy}_{index:05d}.{extension}",
                          quality=90)
    return folder
