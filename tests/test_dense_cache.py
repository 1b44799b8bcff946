"""Two workers that need the same dense model together: exactly one trains it, the other
waits and reads the finished file; nothing half-written is left behind. A damaged cache file
is trained again, never loaded."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from prunesearch.training import data as data_module
from prunesearch.search import dense
from prunesearch.config import studyfile


def load_dense(study_path: str, data_dir: str, cache_dir: str, barrier) -> tuple[bool, float]:
    spec = studyfile.load(study_path)
    data = data_module.load(data_dir=Path(data_dir), val_size=spec.data.val_size,
                            train_subset=spec.data.train_subset, seed=spec.seed)
    barrier.wait()  # both workers reach the cache at the same moment
    checkpoint = dense.load_or_train(spec, data, cache_dir=Path(cache_dir),
                                     device=torch.device("cpu"))
    return checkpoint.cache_hit, float(sum(t.double().sum() for t in
                                           checkpoint.trained_state.values()))


def test_two_workers_starting_together_train_the_dense_model_once(tiny_study, cifar_dir,
                                                                   tmp_path):
    cache_dir = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, \
            ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        barrier = manager.Barrier(2)
        futures = [pool.submit(load_dense, str(tiny_study), str(cifar_dir), str(cache_dir),
                               barrier) for _ in range(2)]
        results = [future.result(timeout=120) for future in futures]

    assert sorted(hit for hit, _ in results) == [False, True]
    assert results[0][1] == results[1][1]  # the waiting worker read the finished weights
    assert len(list(cache_dir.glob("dense-*.pt"))) == 1
    assert not list(cache_dir.glob("*.tmp"))


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:5000])  # a copy interrupted


def one_byte_changed(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # a disk error
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("damage", [cut_short, one_byte_changed])
def test_a_damaged_dense_cache_is_trained_again_never_loaded(tiny_study, cifar_dir, tmp_path,
                                                             damage, caplog):
    spec = studyfile.load(str(tiny_study))
    data = data_module.load(data_dir=cifar_dir, val_size=spec.data.val_size,
                            train_subset=spec.data.train_subset, seed=spec.seed)
    first = dense.load_or_train(spec, data, cache_dir=tmp_path, device=torch.device("cpu"))
    damage(first.path)

    again = dense.load_or_train(spec, data, cache_dir=tmp_path, device=torch.device("cpu"))

    assert not again.cache_hit  # trained again, the damaged file never loaded
    assert f"dense cache {first.path} fails its checksum" in caplog.text
    assert dense._read(first.path) is not None  # whole again
    assert all(torch.equal(again.trained_state[k], v) for k, v in first.trained_state.items())


def _another(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, (tuple, list)):
        return (*value, 0)
    return "another" if value is None else f"{value}x"


def test_every_setting_the_dense_model_depends_on_is_in_its_cache_key_and_the_fingerprint(
        tiny_study, tmp_path):
    """Both are made from studyfile.dense_identity: a setting added to the data, model or dense
    section joins the cache key and the study's fingerprint without anyone listing it."""
    import dataclasses
    from types import SimpleNamespace

    spec = studyfile.load(tiny_study)
    data = SimpleNamespace(fingerprint="abc")
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"a checkpoint")
    for section in studyfile.SECTIONS:
        for field in dataclasses.fields(getattr(spec, section)):
            value = str(weights) if field.name == "checkpoint" else \
                _another(getattr(getattr(spec, section), field.name))
            changed = dataclasses.replace(spec, **{section: dataclasses.replace(
                getattr(spec, section), **{field.name: value})})
            assert dense.cache_key(changed, data) != dense.cache_key(spec, data), field.name
            assert studyfile.fingerprint(changed) != studyfile.fingerprint(spec), field.name
    with_checkpoint = dataclasses.replace(spec, dense=dataclasses.replace(
        spec.dense, checkpoint=str(weights)))
    before = dense.cache_key(with_checkpoint, data)
    weights.write_bytes(b"the same file retrained")  # its content, not only its name, counts
    assert dense.cache_key(with_checkpoint, data) != before
    reseeded = dataclasses.replace(spec, seed=spec.seed + 1)
    assert dense.cache_key(reseeded, data) != dense.cache_key(spec, data)
    assert studyfile.fingerprint(reseeded) != studyfile.fingerprint(spec)
