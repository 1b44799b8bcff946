import pickle
import urllib.error

import pytest
import torch

from prunesearch.training import data
from prunesearch.training.sources import cifar
from prunesearch.errors import DataError


def test_reads_the_original_format_from_the_parent_or_the_folder_itself(cifar_dir):
    by_parent = data.load(data_dir=cifar_dir, val_size=50, train_subset=None, seed=0)
    by_folder = data.load(data_dir=cifar_dir / cifar.BATCHES_DIR, val_size=50,
                          train_subset=None, seed=0)
    assert by_parent.fingerprint == by_folder.fingerprint
    assert by_parent.train.images.dtype == torch.uint8
    assert by_parent.train.images.shape[1:] == (3, 32, 32)
    assert (len(by_parent.train), len(by_parent.val), len(by_parent.test)) == (200, 50, 50)


def test_validation_split_is_stratified_disjoint_and_seeded(cifar_dir):
    first = data.load(data_dir=cifar_dir, val_size=0.2, train_subset=100, seed=0)
    again = data.load(data_dir=cifar_dir, val_size=0.2, train_subset=100, seed=0)
    other = data.load(data_dir=cifar_dir, val_size=0.2, train_subset=100, seed=1)
    assert len(first.val) == 50 and len(first.train) == 100
    assert torch.equal(first.val.images, again.val.images)
    assert not torch.equal(first.val.images, other.val.images)
    assert torch.bincount(first.val.labels, minlength=10).tolist() == [5] * 10
    assert torch.bincount(first.train.labels, minlength=10).tolist() == [10] * 10
    train_rows = {bytes(x.numpy()) for x in first.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in first.val.images)


def test_augment_crops_and_flips_a_batch_at_once():
    images = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8)
    images = images.reshape(2, 3, 32, 32).repeat(16, 1, 1, 1)
    out = data.augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert not torch.equal(out, images)
    same = data.augment(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    # every output is a shifted (maybe flipped) window of its zero-padded input
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    for i in range(4):
        windows = [padded[i, :, y:y + 32, x:x + 32] for y in range(9) for x in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(2)) for w in windows)


def test_no_data_and_no_network_says_where_it_looked(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataError) as error:
        data.load(data_dir=tmp_path, val_size=10, train_subset=None, seed=0)
    message = str(error.value)
    assert str(tmp_path / cifar.BATCHES_DIR) in message and "--data-dir" in message
    assert "\n" not in message


def test_corrupt_batch_file_is_named(cifar_dir, tmp_path):
    broken = tmp_path / cifar.BATCHES_DIR
    broken.mkdir()
    for source in (cifar_dir / cifar.BATCHES_DIR).iterdir():
        (broken / source.name).write_bytes(source.read_bytes())
    (broken / "data_batch_3").write_bytes(source.read_bytes()[:100])
    with pytest.raises(DataError, match="data_batch_3"):
        data.load(data_dir=tmp_path, val_size=10, train_subset=None, seed=0)


def test_labels_out_of_range_are_refused(tmp_path):
    folder = tmp_path / cifar.BATCHES_DIR
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(
        {"data": torch.zeros(2, 3072, dtype=torch.uint8).numpy(), "labels": [0, 12]}))
    with pytest.raises(DataError, match="labels outside"):
        cifar.read_batch(folder / "test_batch")
