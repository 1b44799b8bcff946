"""A study's images, read as its [data] says (training.data.load), and what a study records of
them: enough for `export` to read its test split again and for a shipped model to be used
without the study (trial.json)."""

from pathlib import Path

from prunesearch.config.studyfile import StudySpec
from prunesearch.training import data as data_module
from prunesearch.training.data import ImageData
from prunesearch.training.sources import cifar


def read(spec: StudySpec, *, data_dir: Path, cache_dir: Path | None) -> ImageData:
    """The study's data: CIFAR from `data_dir` (or data.path), an image folder or the user's
    data set; decoded images cached under `cache_dir`."""
    data = spec.data
    return data_module.load(data_dir=data_dir, val_size=data.val_size,
                            train_subset=data.train_subset, seed=spec.seed, source=data.source,
                            path=Path(data.path) if data.path else None,
                            image_size=data.image_size, mean=data.mean, std=data.std,
                            cache_dir=cache_dir, skip_unreadable=data.skip_unreadable)


def described(spec: StudySpec, data: ImageData) -> dict:
    """What a study records of its data (StudyRecord.data) and `export` writes to trial.json:
    the source, where it was read, the input size, the normalisation and the classes."""
    return {"source": spec.data.source, "path": spec.data.path, "where": data.where,
            "image_size": data.image_size, "mean": list(data.train.mean),
            "std": list(data.train.std), "classes": list(data.classes),
            "unreadable": data.unreadable}


CIFAR10_RECORD = {"source": "cifar10", "path": None, "image_size": 32, "mean": list(data_module.MEAN),
                  "std": list(data_module.STD), "classes": list(cifar.CIFAR10_CLASSES)}
"""What a study made before other sources were read: CIFAR-10."""


def test_split(recorded: dict | None, *, data_dir: Path, cache_dir: Path | None
               ) -> data_module.Split:
    """The test split of the data a study recorded (None: CIFAR-10, as studies made before
    other sources were)."""
    if recorded is None:
        return data_module.load_test(data_dir)
    return data_module.load_test(
        data_dir, source=recorded["source"],
        path=Path(recorded["path"]) if recorded.get("path") else None,
        image_size=recorded["image_size"], mean=tuple(recorded["mean"]),
        std=tuple(recorded["std"]), cache_dir=cache_dir)
