"""Your data and your trained model: image folders (PNG and JPEG; RGB, grayscale, RGBA and
palette images of mixed sizes; several class counts), CIFAR-100, a data set of your own, a
checkpoint or torchvision's weights as the dense model; and every way these can be wrong,
refused in one line before anything is written."""

import dataclasses
import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from prunesearch.cli import main
from prunesearch.config import preflight, studyfile
from prunesearch.search import dense
from prunesearch.search import data as study_data
from prunesearch.testing import data as testing_data
from prunesearch.testing import studies
from prunesearch.training import data
from prunesearch.training.sources import cifar

FOLDER_STUDY = {
    "name": "photos", "n_trials": 1, "latency_device": "none",
    "data": {"source": "imagefolder", "path": "photos", "image_size": 24},
    "model": {"width": 4}, "dense": {"epochs": 1, "batch_size": 16},
    "space": {"method": "l1_unstructured", "amount": 0.3, "iterations": 1,
              "retrain_epochs": 1, "reinit": "finetune"},
}


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def folder_study(where: Path, name: str = "s.toml", **changes) -> Path:
    return studies.study_file(where / name, base=None, **{**FOLDER_STUDY, **changes})


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three classes in train/, val/ and test/: PNG and JPEG, four colour modes, two sizes."""
    return testing_data.image_folder(tmp_path_factory.mktemp("yours") / "photos")


def load_folder(path: Path, **options):
    return data.load(data_dir=path, val_size=5, train_subset=None, seed=0,
                     source="imagefolder", path=path, **{"image_size": 24, **options})


def test_an_image_folder_is_read_with_its_own_splits_classes_and_statistics(photos, tmp_path):
    loaded = load_folder(photos, cache_dir=tmp_path)
    assert loaded.classes == ("class_00", "class_01", "class_02")  # sorted folder names
    # train/, val/ and test/: val/ selects, test/ reports; nothing is held out of train/.
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (36, 12, 12)
    assert loaded.train.images.shape[1:] == (3, 24, 24)
    assert loaded.train.images.dtype == torch.uint8
    assert sorted(loaded.train.labels.bincount().tolist()) == [12, 12, 12]
    # The mean is the training images' own, in [0, 1] units, not CIFAR-10's.
    expected = (loaded.train.images.double() / 255).mean(dim=(0, 2, 3))
    assert torch.allclose(torch.tensor(loaded.train.mean, dtype=torch.float64), expected,
                          atol=1e-4)
    assert loaded.val.mean == loaded.train.mean and loaded.test.std == loaded.train.std
    # Each class keeps its colour through grayscale, palette and RGBA files alike: a class's
    # images are closer to their own class's mean colour than to the others'.
    means = torch.stack([loaded.train.images[loaded.train.labels == k].double().mean(dim=(0, 2, 3))
                         for k in range(3)])
    for k in range(3):
        pictures = loaded.test.images[loaded.test.labels == k].double().mean(dim=(2, 3))
        nearest = torch.cdist(pictures, means).argmin(dim=1)
        assert (nearest == k).float().mean() >= 0.5


def test_a_decoded_folder_is_cached_read_back_memory_mapped_and_redone_when_it_changes(
        photos, tmp_path):
    first = load_folder(photos, cache_dir=tmp_path)
    cached, = (tmp_path / "images").iterdir()
    again = load_folder(photos, cache_dir=tmp_path)
    assert torch.equal(first.train.images, again.train.images)
    assert first.fingerprint == again.fingerprint
    saved = torch.load(cached, mmap=True, weights_only=True)
    assert torch.equal(saved["test_images"], first.test.images)

    changed = tmp_path / "changed"
    shutil.copytree(photos, changed)
    Image.new("RGB", (30, 30), (255, 0, 0)).save(changed / "train" / "class_00" / "new.png")
    grown = load_folder(changed, cache_dir=tmp_path)
    assert len(grown.train) == len(first.train) + 1
    assert len(list((tmp_path / "images").iterdir())) == 2  # a new entry, keyed by the files


def test_train_and_one_other_folder_hold_validation_out_of_train(tmp_path):
    for other in ("val", "test"):
        made = testing_data.image_folder(tmp_path / other, classes=4,
                                         per_class={"train": 10, other: 3})
        loaded = load_folder(made, cache_dir=None)
        assert len(loaded.classes) == 4
        # 5 held out of train/ (stratified) for validation; the other folder is reported.
        assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (35, 5, 12)


def test_cifar100_reads_its_fine_labels_and_class_names(tmp_path):
    folder = tmp_path / cifar.CIFAR100_DIR
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, count in (("train", 300), ("test", 100)):
        labels = (np.arange(count) % 100).tolist()
        (folder / name).write_bytes(pickle.dumps({
            "data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
            "fine_labels": labels, "coarse_labels": [label // 5 for label in labels]}))
    (folder / "meta").write_bytes(pickle.dumps(
        {"fine_label_names": [f"kind{i}" for i in range(100)]}))
    loaded = data.load(data_dir=tmp_path, val_size=100, train_subset=None, seed=0,
                       source="cifar100")
    assert loaded.num_classes == 100 and loaded.classes[7] == "kind7"
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (200, 100, 100)
    assert loaded.val.labels.bincount().tolist() == [1] * 100  # stratified over 100 classes


def test_validate_says_the_classes_and_the_input_size_the_network_is_built_for(photos,
                                                                              tmp_path):
    shutil.copytree(photos, tmp_path / "photos")
    shown = invoke("validate", "--study", str(folder_study(tmp_path)))
    assert shown.exit_code == 0, shown.output
    assert "network: 3 classes, input 3 x 24 x 24, " in shown.output


def test_a_data_set_of_your_own_is_read_from_its_callable(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import torch\n"
        "from PIL import Image\n"
        "class Pictures(torch.utils.data.Dataset):\n"
        "    def __init__(self, n): self.n = n\n"
        "    def __len__(self): return self.n\n"
        "    def __getitem__(self, i):\n"
        "        if i % 2:\n"
        "            return Image.new('L', (20, 10), 40 * (i % 5)), i % 5\n"
        "        return torch.full((3, 12, 16), 40 * (i % 5), dtype=torch.uint8), i % 5\n"
        "def make():\n"
        "    return Pictures(50), Pictures(10), [f'c{k}' for k in range(5)]\n")
    spec = studyfile.load(folder_study(tmp_path, data={"source": "mine.py:make",
                                                       "image_size": 16, "val_size": 10}))
    assert spec.data.source == f"{tmp_path / 'mine.py'}:make"  # found from anywhere
    loaded = study_data.read(spec, data_dir=tmp_path, cache_dir=None)
    assert loaded.classes == ("c0", "c1", "c2", "c3", "c4")
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (40, 10, 10)
    assert loaded.train.images.shape[1:] == (3, 16, 16)
    # Item 3 (a tensor) and item 6 (grayscale) keep their grey level 40 * label.
    grey = loaded.test.images.float().mean(dim=(1, 2, 3))
    assert torch.allclose(grey, 40.0 * loaded.test.labels.float(), atol=1)


def trained_dense(study: Path, cache: Path):
    spec = preflight.run(studyfile.load(study)).spec
    loaded = study_data.read(spec, data_dir=study.parent, cache_dir=cache)
    return spec, loaded, dense.load_or_train(spec, loaded, cache_dir=cache,
                                             device=torch.device("cpu"))


def test_your_checkpoint_is_the_dense_model_untrained_again(photos, tmp_path, monkeypatch):
    shutil.copytree(photos, tmp_path / "photos")
    _, _, first = trained_dense(folder_study(tmp_path, "a.toml"), tmp_path / "cache")
    torch.save(first.trained_state, tmp_path / "mine.pt")
    study = folder_study(tmp_path, "b.toml", dense={"checkpoint": "mine.pt", "batch_size": 16})
    assert studyfile.load(study).dense.epochs == 0  # a checkpoint's default

    monkeypatch.setattr(dense, "train_epochs", lambda *a, epochs, **k: pytest.fail(
        "trained it") if epochs else math.nan)
    spec, _, given = trained_dense(study, tmp_path / "cache")
    assert not given.cache_hit and given.path != first.path  # its own cache entry
    assert (given.val_accuracy, given.test_accuracy) == (first.val_accuracy,
                                                          first.test_accuracy)
    assert all(torch.equal(given.trained_state[k], first.trained_state[k])
               for k in first.trained_state)
    # rewind with a checkpoint rewinds to the checkpoint's weights: the start of its training.
    assert all(torch.equal(given.rewind_state[k], first.trained_state[k])
               for k in first.trained_state)
    assert "checkpoint_sha256" in json.dumps(studyfile.dense_identity(spec))


def test_reset_classifier_fits_a_checkpoint_for_other_classes(photos, tmp_path):
    shutil.copytree(photos, tmp_path / "photos")
    other = {"name": "cifar_cnn", "width": 4}
    torch.manual_seed(1)
    from prunesearch.training import models

    ten_classes = models.from_spec(other, num_classes=10).state_dict()
    torch.save(ten_classes, tmp_path / "ten.pt")
    refused = invoke("validate", "--study", str(folder_study(
        tmp_path, dense={"checkpoint": "ten.pt", "epochs": 1})))
    assert refused.exit_code == 2
    assert "classifier.weight is (10, 16) in it but (3, 16) in the model" in refused.output
    assert "set dense.reset_classifier = true" in refused.output

    study = folder_study(tmp_path, dense={"checkpoint": "ten.pt", "epochs": 1,
                                          "reset_classifier": True, "batch_size": 16})
    spec = studyfile.load(study)
    start = dense.start_state(spec, num_classes=3)
    assert start["classifier.weight"].shape == (3, 16)
    assert all(torch.equal(start[k], v) for k, v in ten_classes.items()
               if not k.startswith("classifier."))
    _, _, trained = trained_dense(study, tmp_path / "cache")
    assert trained.trained_state["classifier.weight"].shape == (3, 16)


def test_torchvision_weights_come_from_torchs_cache(photos, tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    torch.manual_seed(2)
    imagenet = torchvision.models.mobilenet_v3_small().state_dict()  # stands in for the file
    placed = tmp_path / "torch" / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    placed.parent.mkdir(parents=True)
    torch.save(imagenet, placed)
    study = folder_study(tmp_path, model={"name": "torchvision:mobilenet_v3_small",
                                          "weights": "DEFAULT", "cifar_stem": False},
                         dense={"epochs": 1, "reset_classifier": True},
                         data={**FOLDER_STUDY["data"], "path": str(photos), "image_size": 32})
    spec = preflight.run(studyfile.load(study)).spec
    assert spec.model.classifier == "classifier.3"
    start = dense.start_state(spec, num_classes=3)
    assert start["classifier.3.weight"].shape == (3, 1024)
    assert all(torch.equal(start[k], v) for k, v in imagenet.items()
               if not k.startswith("classifier.3."))

    placed.unlink()  # and offline, without the file: one line naming it and where it goes
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(
        OSError("network unreachable")))
    with pytest.raises(studyfile.StudyFileError, match=f"put {placed.name} .* in "
                                                       f"{placed.parent}"):
        dense.start_state(spec, num_classes=3)


def refusal(tmp_path: Path, photos: Path, name: str):
    """A study file (and what it needs) that must be refused, for case `name`."""
    where = tmp_path / "photos"
    shutil.copytree(photos, where)
    if name == "no train/":
        shutil.rmtree(where / "train")
    elif name == "no images":
        for file in (where / "test").rglob("*.*g"):
            file.unlink()
    elif name == "a class the others lack":
        (where / "val" / "class_09").mkdir()
        shutil.copy(next((where / "val" / "class_00").glob("*.png")), where / "val" / "class_09")
    elif name == "a checkpoint that runs code":
        torch.save(torch.nn.Linear(2, 2), tmp_path / "mine.pt")
        return folder_study(tmp_path, dense={"checkpoint": "mine.pt"})
    elif name == "not a state dict":
        torch.save([1, 2, 3], tmp_path / "mine.pt")
        return folder_study(tmp_path, dense={"checkpoint": "mine.pt"})
    elif name == "a checkpoint that does not match":
        torch.save({"features.0.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "mine.pt")
        return folder_study(tmp_path, dense={"checkpoint": "mine.pt"})
    elif name == "an image size too small":
        return folder_study(tmp_path, model={"name": "vgg16_bn", "width": 4},
                            data={**FOLDER_STUDY["data"], "image_size": 16})
    elif name == "a mean of two numbers":
        return folder_study(tmp_path, data={**FOLDER_STUDY["data"], "mean": [0.5, 0.5],
                                            "std": [0.2, 0.2, 0.2]})
    elif name == "a zero std":
        return folder_study(tmp_path, data={**FOLDER_STUDY["data"], "mean": [0.5, 0.5, 0.5],
                                            "std": [0.2, 0.0, 0.2]})
    elif name == "an unknown source":
        return folder_study(tmp_path, data={**FOLDER_STUDY["data"], "source": "mnist"})
    elif name == "a missing path":
        return folder_study(tmp_path, data={**FOLDER_STUDY["data"], "path": "elsewhere"})
    elif name == "a missing checkpoint":
        return folder_study(tmp_path, dense={"checkpoint": "nowhere.pt"})
    elif name == "epochs 0 without a checkpoint":
        return folder_study(tmp_path, dense={"epochs": 0})
    elif name == "weights on a registry model":
        return folder_study(tmp_path, model={"name": "resnet20", "weights": "DEFAULT"})
    return folder_study(tmp_path)


REFUSED = {
    "no train/": "holds ['test', 'val']; an image folder holds train/ and val/ and/or test/",
    "no images": "test holds no images",
    "a class the others lack": "has class folders ['class_09'] that train/ lacks",
    "a checkpoint that runs code": "needs code to load (a whole pickled model?), which is "
                                   "refused (Unsupported global: GLOBAL torch.nn.modules.linear",
    "not a state dict": "holds a list, not a state dict",
    "a checkpoint that does not match": "features.0.0.weight is (8, 3, 3, 3) in it but "
                                        "(4, 3, 3, 3) in the model",
    "an image size too small": "data.image_size = 16: large enough for vgg16_bn's downsampling",
    "a mean of two numbers": "data.mean = [0.5, 0.5]: three numbers in [0, 1]",
    "a zero std": "data.std = [0.2, 0.0, 0.2]: three numbers > 0",
    "an unknown source": "data.source = 'mnist': one of ['cifar10', 'cifar100', 'imagefolder']",
    "a missing path": "data.path = 'elsewhere': an existing folder",
    "a missing checkpoint": "dense.checkpoint = 'nowhere.pt': an existing file",
    "epochs 0 without a checkpoint": "dense.epochs = 0: an integer >= 1: 0 needs "
                                     "dense.checkpoint or model.weights",
    "weights on a registry model": "model.weights = 'DEFAULT': only for torchvision:NAME models",
}


@pytest.mark.parametrize("name", REFUSED, ids=REFUSED)
def test_what_cannot_work_is_refused_in_one_line_before_anything_is_written(
        photos, tmp_path, monkeypatch, name):
    study = refusal(tmp_path, photos, name)
    monkeypatch.chdir(tmp_path)
    before = sorted(path.name for path in tmp_path.iterdir())
    result = invoke("optimize", "--study", str(study), "--cache-dir", str(tmp_path / "cache"))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and REFUSED[name] in lines[0], \
        lines
    assert sorted(path.name for path in tmp_path.iterdir()) == before


def test_an_unreadable_image_is_named_or_skipped_and_counted(photos, tmp_path, monkeypatch):
    shutil.copytree(photos, tmp_path / "photos")
    broken = tmp_path / "photos" / "train" / "class_01" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a JPEG")
    monkeypatch.chdir(tmp_path)
    result = invoke("optimize", "--study", str(folder_study(tmp_path)), "--cache-dir",
                    str(tmp_path / "cache"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {broken}: cannot be read as an image (cannot identify image file "
        f"'{broken}'); fix or remove it, or set data.skip_unreadable = true"]
    assert not (tmp_path / "prunesearch.db").exists()

    skipping = folder_study(tmp_path, data={**FOLDER_STUDY["data"], "skip_unreadable": True})
    loaded = study_data.read(studyfile.load(skipping), data_dir=tmp_path,
                             cache_dir=tmp_path / "cache")
    assert loaded.unreadable == 1 and len(loaded.train) == 36
    assert study_data.described(studyfile.load(skipping), loaded)["unreadable"] == 1


@pytest.mark.slow
def test_a_structured_study_on_an_image_folder_exports_and_checks_onnx_at_its_size(
        photos, tmp_path, monkeypatch):
    """The whole way at 40 px: structured pruning, costs at that size, the MLflow dataset,
    the overview, and an ONNX export whose trial.json says how to feed the model."""
    shutil.copytree(photos, tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    study = folder_study(tmp_path, data={**FOLDER_STUDY["data"], "image_size": 40},
                         space={**FOLDER_STUDY["space"], "method": "ln_structured"})
    ran = invoke("optimize", "--study", str(study), "--cache-dir", str(tmp_path / "cache"))
    assert ran.exit_code == 0, ran.output
    shipped = invoke("export", "--study", str(study), "--trial", "0", "--output", "t0",
                     "--format", "onnx", "--cache-dir", str(tmp_path / "cache"))
    assert shipped.exit_code == 0, shipped.output
    summary = json.loads((tmp_path / "t0" / "trial.json").read_text())
    assert summary["data"]["image_size"] == 40
    assert summary["data"]["classes"] == ["class_00", "class_01", "class_02"]
    assert summary["data"]["source"] == "imagefolder" and len(summary["data"]["mean"]) == 3
    assert summary["onnx"]["test_accuracy"] == summary["test_accuracy_measured"]
    assert summary["onnx"]["params"] < summary["onnx"]["dense_params"]

    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "t0" / "model.onnx"))
    assert session.get_inputs()[0].shape[1:] == [3, 40, 40]

    scanned = invoke("sensitivity", "--study", str(study), "--amounts", "0.5", "--output",
                     "scan", "--cache-dir", str(tmp_path / "cache"))
    assert scanned.exit_code == 0, scanned.output
    units = json.loads((tmp_path / "scan" / "sensitivity.json").read_text())["units"]
    assert units and all(0 <= unit["val_accuracy"][0] <= 1 for unit in units)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("photos").experiment_id])
    parent, = [r for r in runs if r.data.tags.get("prunesearch.role") == "study"]
    dataset = parent.inputs.dataset_inputs[0].dataset
    profile = json.loads(dataset.profile)
    assert (profile["classes"], profile["image_size"], profile["source"]) == (
        3, 40, "imagefolder")
    assert "data: imagefolder" in parent.data.tags["mlflow.note.content"]


def test_a_checkpoint_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    """The fingerprint and the dense cache key both name the checkpoint's content: read once
    per run, not once per call, and read again once the file changes."""
    checkpoint = tmp_path / "given.pt"
    checkpoint.write_bytes(b"weights one")
    spec = studyfile.load("smoke")
    spec = dataclasses.replace(spec, dense=dataclasses.replace(spec.dense,
                                                               checkpoint=str(checkpoint)))
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or real(self))
    first = studyfile.dense_identity(spec)
    assert studyfile.fingerprint(spec)["dense.checkpoint_sha256"] == \
        first["dense"]["checkpoint_sha256"]
    studyfile.dense_identity(spec)
    assert reads.count(checkpoint.resolve()) == 1
    checkpoint.write_bytes(b"weights two, longer")
    assert studyfile.dense_identity(spec)["dense"]["checkpoint_sha256"] != \
        first["dense"]["checkpoint_sha256"]
