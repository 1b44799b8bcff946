"""Image folders in torchvision's and timm's layout: `train/`, and `val/` and/or `test/`, each
holding a folder per class (sorted names are the classes). Files that are not images are
ignored, as torchvision ignores them.

Every image is decoded, converted, resized and cropped once (pictures.fit), by a thread per
core, and kept as uint8 tensors. The result is cached on disk, keyed by the folder's file
list, sizes and modification times and the image size, and read back memory-mapped: a second
run starts in seconds, and pages are read from the cache file as batches need them.
"""

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from prunesearch.errors import DataError
from prunesearch.foundation import interrupts
from prunesearch.foundation.progress import steps
from prunesearch.training.sources.pictures import fit

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""What torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS)."""
CACHE_VERSION = 1
CHUNK = 256  # images decoded between two looks at a stop request


@dataclass(frozen=True)
class Listing:
    """One split's image files and their labels (indices into `classes`)."""

    files: tuple[Path, ...]
    labels: tuple[int, ...]


def splits_of(root: Path) -> dict[str, Path]:
    """The split folders under `root`; refused without train/, or with neither val/ nor test/."""
    if not root.is_dir():
        raise DataError(f"data.path: no folder {root}")
    found = {name: root / name for name in SPLITS if (root / name).is_dir()}
    if "train" not in found or len(found) == 1:
        raise DataError(f"data.path: {root} holds {sorted(found) or 'no split folders'}; an "
                        "image folder holds train/ and val/ and/or test/, each with a folder "
                        "of images per class")
    return found


def classes_of(split: Path) -> tuple[str, ...]:
    return tuple(sorted(entry.name for entry in os.scandir(split) if entry.is_dir()))


def list_split(split: Path, classes: tuple[str, ...]) -> Listing:
    files, labels = [], []
    for label, name in enumerate(classes):
        for folder, _, names in sorted(os.walk(split / name, followlinks=True)):
            for file in sorted(names):
                if file.lower().endswith(EXTENSIONS):
                    files.append(Path(folder) / file)
                    labels.append(label)
    return Listing(tuple(files), tuple(labels))


def listings(root: Path) -> tuple[tuple[str, ...], dict[str, Listing]]:
    """The classes (train/'s class folders) and every split's files; a split whose class
    folders differ from train/'s, or a split without images, is refused."""
    folders = splits_of(root)
    classes = classes_of(folders["train"])
    for name, folder in folders.items():
        other = classes_of(folder)
        if other != classes:
            extra = sorted(set(other) ^ set(classes))
            raise DataError(f"data.path: {folder} has class folders {extra[:3]} that "
                            f"{'train/ lacks' if extra[0] in other else 'it lacks'}; every "
                            "split holds the same class folders")
    found = {name: list_split(folder, classes) for name, folder in folders.items()}
    for name, listing in found.items():
        if not listing.files:
            raise DataError(f"data.path: {folders[name]} holds no images (looked for "
                            f"{', '.join(EXTENSIONS)} in its class folders)")
    return classes, found


def cache_key(root: Path, image_size: int, found: dict[str, Listing],
              skip_unreadable: bool) -> str:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, image_size, skip_unreadable]).encode())
    for name, listing in found.items():
        for file, label in zip(listing.files, listing.labels):
            stat = file.stat()
            digest.update(f"{name}\0{file.relative_to(root)}\0{label}\0{stat.st_size}\0"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def read(root: Path, *, image_size: int, cache_dir: Path | None, skip_unreadable: bool
         ) -> tuple[tuple[str, ...], dict[str, tuple[torch.Tensor, torch.Tensor]], int]:
    """(classes, {split: (uint8 N x 3 x S x S images, int64 labels)}, images skipped as
    unreadable), from the cache when it holds this folder as it is now."""
    classes, found = listings(root)
    path = None
    if cache_dir is not None:
        path = cache_dir / "images" / f"{root.name}-{image_size}px-" \
                                      f"{cache_key(root, image_size, found, skip_unreadable)}.pt"
        if path.exists():
            saved = torch.load(path, mmap=True, weights_only=True)
            return classes, {name: (saved[f"{name}_images"], saved[f"{name}_labels"])
                             for name in found}, int(saved["unreadable"])
    decoded, unreadable = {}, 0
    for name, listing in found.items():
        images, labels, skipped = decode(listing, image_size, skip_unreadable, name)
        decoded[name] = images, labels
        unreadable += skipped
    if path is not None:
        _write(path, {**{f"{name}_{part}": tensor for name, pair in decoded.items()
                         for part, tensor in zip(("images", "labels"), pair)},
                      "unreadable": torch.tensor(unreadable)})
        return read(root, image_size=image_size, cache_dir=cache_dir,
                    skip_unreadable=skip_unreadable)  # memory-mapped, as every later run
    return classes, decoded, unreadable


def decode(listing: Listing, image_size: int, skip_unreadable: bool, name: str
           ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Every file of `listing` fitted to `image_size`, a thread per core; an unreadable file
    is refused, naming it, or with `skip_unreadable` left out and counted."""
    images = torch.empty(len(listing.files), 3, image_size, image_size, dtype=torch.uint8)
    keep = torch.ones(len(listing.files), dtype=torch.bool)

    def one(index: int) -> None:
        file = listing.files[index]
        try:
            with Image.open(file) as picture:
                images[index] = fit(picture, image_size)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError
                ) as error:
            if not skip_unreadable:
                raise DataError(f"{file}: cannot be read as an image ({error}); fix or remove "
                                "it, or set data.skip_unreadable = true") from None
            keep[index] = False

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        chunks = range(0, len(listing.files), CHUNK)
        for start in steps(chunks, total=len(chunks), label=f"reading {name}/"):
            interrupts.check()
            list(pool.map(one, range(start, min(start + CHUNK, len(listing.files)))))
    skipped = int((~keep).sum())
    if skipped:
        log.warning("%s/: %d unreadable files skipped (data.skip_unreadable)", name, skipped)
    if skipped == len(keep):
        raise DataError(f"data.path: every image in {name}/ is unreadable")
    return images[keep], torch.tensor(listing.labels, dtype=torch.int64)[keep], skipped


def _write(path: Path, tensors: dict) -> None:
    """Written to a temporary name and renamed: a reader never sees half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    os.close(handle)
    try:
        torch.save(tensors, temporary)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
