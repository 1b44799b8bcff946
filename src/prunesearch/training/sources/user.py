"""A data set of the user's own: `module:callable` or `file.py:callable`, resolved as custom
models are. Called with no arguments, it returns `(train, test, classes)`: two
`torch.utils.data.Dataset`s whose items are `(image, label)`, an image a PIL image or a uint8
C x H x W tensor, a label an integer in `range(len(classes))`. Each image is fitted to the
image size once, when read."""

from collections.abc import Sequence

import torch

from prunesearch.errors import DataError
from prunesearch.foundation import interrupts
from prunesearch.foundation.progress import steps
from prunesearch.training.models import custom
from prunesearch.training.sources.pictures import from_item


def read(name: str, *, image_size: int) -> tuple[tuple[str, ...], dict[str, tuple]]:
    """(classes, {"train": (images, labels), "test": (images, labels)})."""
    train, test, classes = _called(name)
    return classes, {"train": _split(name, "train", train, classes, image_size),
                     "test": _split(name, "test", test, classes, image_size)}


def classes(name: str) -> tuple[str, ...]:
    """The class names data set `name` gives, its images not read."""
    return _called(name)[2]


def _called(name: str) -> tuple:
    try:
        make = custom.builder(name)
    except custom.ModelError as error:
        raise DataError(f"data.source = {name!r}: {error}") from None
    try:
        returned = make()
        train, test, classes = returned
    except Exception as error:  # whatever the user's code raises, or a wrong return value
        raise DataError(f"data.source = {name!r}: calling it failed or returned something "
                        f"other than (train, test, classes) ({type(error).__name__}: "
                        f"{error})") from None
    classes = tuple(str(c) for c in classes)
    if not classes:
        raise DataError(f"data.source = {name!r}: it names no classes")
    return train, test, classes


def _split(name: str, split: str, dataset, classes: Sequence[str], image_size: int) -> tuple:
    try:
        count = len(dataset)
    except TypeError:
        raise DataError(f"data.source = {name!r}: its {split} set has no length; return a "
                        "map-style torch.utils.data.Dataset") from None
    if count == 0:
        raise DataError(f"data.source = {name!r}: its {split} set is empty")
    images = torch.empty(count, 3, image_size, image_size, dtype=torch.uint8)
    labels = torch.empty(count, dtype=torch.int64)
    for index in steps(range(count), total=count, label=f"reading {split}"):
        if index % 256 == 0:
            interrupts.check()
        try:
            image, label = dataset[index]
            images[index] = from_item(image, image_size)
        except Exception as error:
            raise DataError(f"data.source = {name!r}: {split} item {index}: {error}") from None
        if not 0 <= int(label) < len(classes):
            raise DataError(f"data.source = {name!r}: {split} item {index} has label {label}; "
                            f"labels are 0..{len(classes) - 1} (one per class name)")
        labels[index] = int(label)
    return images, labels
