"""The dense model, trained once per distinct setting and cached on disk.

The cache key covers everything dense training depends on (studyfile.dense_identity: model,
dense-training and data settings, the seed) and the data's own fingerprint. A file lock makes
concurrent workers wait for the one that trains; the file is written to a temporary name and
renamed, so nobody reads a half-written checkpoint. Its first line is the SHA-256 of the rest:
a file cut short or damaged later (an interrupted copy, a disk error) fails the check and the
dense model is trained again, never loaded.
"""

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from prunesearch.training import models
from prunesearch.training.models import checkpoints, custom
from prunesearch.training.data import ImageData, generator_on
from prunesearch.foundation import interrupts
from prunesearch.foundation.diskspace import writing
from prunesearch.errors import DiskFull, StorageError, StudyFileError
from prunesearch.config import studyfile
from prunesearch.config.studyfile import StudySpec
from prunesearch.training.train import OptimizerSettings, resolve_precision, TrainingDiverged, evaluate, train_epochs

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # bump when the checkpoint's content or meaning changes (2: checksummed)
LOCK_POLL_S = 0.2  # how often a worker waiting for the lock looks for a stop request


@dataclass(frozen=True)
class DenseCheckpoint:
    init_state: dict  # weights at initialisation
    rewind_state: dict  # weights after `dense.rewind_epoch` epochs (= init_state at 0)
    trained_state: dict  # weights after all dense epochs
    val_accuracy: float
    test_accuracy: float
    path: Path
    cache_hit: bool  # False when this call trained it


def default_cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "prunesearch" / "dense"


def optimizer_settings(spec: StudySpec, device: torch.device) -> OptimizerSettings:
    dense = spec.dense
    return OptimizerSettings(lr=dense.lr, batch_size=dense.batch_size,
                             momentum=dense.momentum, weight_decay=dense.weight_decay,
                             precision=resolve_precision(dense.precision, device))


def initial_state(spec: StudySpec, num_classes: int, seed: int) -> dict:
    """A freshly initialised model's weights; the same `seed` gives the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = models.from_spec(dataclasses.asdict(spec.model), num_classes=num_classes)
    return _cpu_copy(model.state_dict())


def start_state(spec: StudySpec, num_classes: int) -> dict:
    """What dense training starts from: a fresh initialisation (seeded by the study), or with
    dense.checkpoint or model.weights those weights, the output layer new with
    reset_classifier. `rewind` to epoch 0 restores it."""
    state = initial_state(spec, num_classes, spec.seed)
    if spec.dense.checkpoint is None and spec.model.weights is None:
        return state
    model = models.from_spec(dataclasses.asdict(spec.model), num_classes=num_classes)
    model.load_state_dict(state)
    try:
        given = checkpoints.read(Path(spec.dense.checkpoint)) if spec.dense.checkpoint else \
            checkpoints.pretrained(spec.model.name, spec.model.weights)
        checkpoints.put(model, given, classifier=spec.model.classifier or "classifier",
                        reset_classifier=spec.dense.reset_classifier)
    except custom.ModelError as error:
        key = "dense.checkpoint" if spec.dense.checkpoint else "model.weights"
        raise StudyFileError.bad_value(spec.path, key, spec.dense.checkpoint or
                                       spec.model.weights, str(error)) from None
    return _cpu_copy(model.state_dict())


def cache_key(spec: StudySpec, data: ImageData) -> str:
    identity = {"version": CACHE_VERSION, **studyfile.dense_identity(spec),
                "data_fingerprint": data.fingerprint}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def load_or_train(spec: StudySpec, data: ImageData, *, cache_dir: Path,
                  device: torch.device, fetch=None) -> DenseCheckpoint:
    """The cached dense checkpoint for `spec`, training and caching it first if needed.

    `fetch(path)`, if given, replaces the training: it puts the checkpoint that
    `prunesearch prepare` made at `path` (a worker whose cache folder is not the one prepare
    filled); what it puts there is checked like any cache file."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"dense-{cache_key(spec, data)}.pt"
    with _locked(FileLock(f"{path}.lock")):
        saved = _read(path) if path.exists() else None
        cache_hit = saved is not None
        if path.exists() and not cache_hit and fetch is None:
            log.warning("dense cache %s fails its checksum (cut short or damaged): training "
                        "the dense model again", path)
        if not cache_hit and fetch is not None:
            fetch(path)
            saved = _read(path)
            if saved is None:
                raise StorageError(f"the prepared dense checkpoint fetched to {path} fails its "
                                   "checksum; run `prunesearch prepare` again")
            log.info("dense model fetched from the study run into %s", path)
        elif not cache_hit:
            try:
                saved = _train(spec, data, device)
            except TrainingDiverged as error:
                raise StudyFileError(spec.path, f"dense training diverged ({error}); "
                                                "lower dense.lr") from None
            try:
                _write(path, saved)
            except DiskFull as full:  # the model just trained is still good for this run
                log.warning("%s; this run goes on without the cache", full)
    if cache_hit:
        log.info("dense model from cache %s: val %.1f%%, test %.1f%%", path,
                 100 * saved["val_accuracy"], 100 * saved["test_accuracy"])
    return DenseCheckpoint(**saved, path=path, cache_hit=cache_hit)


@contextlib.contextmanager
def _locked(lock: FileLock):
    """`lock` held; waiting for it (another worker training the same dense model) ends at
    once on a stop request."""
    while True:
        try:
            lock.acquire(timeout=LOCK_POLL_S)
            break
        except Timeout:
            interrupts.check()
    try:
        yield
    finally:
        lock.release()


def _write(path: Path, saved: dict) -> None:
    """`saved` behind its checksum line, through a temporary file renamed into place."""
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    payload = buffer.getvalue()
    with writing(path.parent, "the dense model cache"):
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _read(path: Path) -> dict | None:
    """The checkpoint at `path`, or None if it fails its checksum."""
    digest, _, payload = path.read_bytes().partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def _train(spec: StudySpec, data: ImageData, device: torch.device) -> dict:
    torch.manual_seed(spec.seed)
    init_state = start_state(spec, data.num_classes)
    model = models.from_spec(dataclasses.asdict(spec.model), num_classes=data.num_classes)
    model.load_state_dict(init_state)
    model.to(device)
    snapshots = {0: init_state}

    def on_epoch(epoch: int, loss: float) -> None:
        log.info("dense epoch %d/%d  loss %.3f", epoch, spec.dense.epochs, loss)
        if epoch == spec.dense.rewind_epoch:
            snapshots[epoch] = _cpu_copy(model.state_dict())

    train_epochs(model, data.train, epochs=spec.dense.epochs,
                 settings=optimizer_settings(spec, device),
                 generator=generator_on(data.train.labels.device, spec.seed),
                 augmented=spec.data.augment, on_epoch=on_epoch)
    val_accuracy, test_accuracy = evaluate(model, data.val), evaluate(model, data.test)
    log.info("dense model %s: val %.1f%%, test %.1f%%",
             "trained" if spec.dense.epochs else "as given", 100 * val_accuracy,
             100 * test_accuracy)
    return {"init_state": init_state, "rewind_state": snapshots[spec.dense.rewind_epoch],
            "trained_state": _cpu_copy(model.state_dict()),
            "val_accuracy": val_accuracy, "test_accuracy": test_accuracy}


def _cpu_copy(state: dict) -> dict:
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}
