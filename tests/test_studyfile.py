import pytest
from click.testing import CliRunner

from prunesearch.config import preflight, studyfile
from prunesearch.cli import main
from prunesearch.errors import StudyFileError
from prunesearch.pruning.schedule import REQUIRED_KEYS, Choice, Fixed, Range

from conftest import contents, write_study


@pytest.mark.parametrize("path", studyfile.available(), ids=lambda p: p.stem)
def test_every_shipped_study_file_validates(path):
    spec = preflight.run(studyfile.load(str(path))).spec
    assert spec.name and spec.n_trials >= 1
    family = spec.space.get("schedule", Fixed("iterative"))
    for name in family.choices if isinstance(family, Choice) else (family.value,):
        assert {"method", "reinit", *REQUIRED_KEYS[name]} <= set(spec.space)


def test_l1_iterative_space_is_what_the_issue_asks():
    spec = studyfile.load("l1-iterative")
    assert spec.space["method"] == Choice(("l1_unstructured",))
    assert spec.space["amount"] == Range(0.2, 0.6, integer=False)
    assert spec.space["iterations"].integer and spec.space["retrain_epochs"].integer
    assert spec.objectives == ("val_accuracy", "sparsity")


def test_name_resolves_local_file_before_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    path = write_study(tmp_path / "studies", name="smoke.toml", retrain_epochs="1")
    path.write_text(path.read_text().replace('"tiny"', '"local-smoke"'))
    assert studyfile.load("smoke").name == "local-smoke"
    assert studyfile.load("l1-iterative").name == "l1-iterative"  # falls back to shipped


def test_unknown_study_name_lists_the_available_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyFileError, match="l1-iterative"):
        studyfile.resolve("no-such-study")


def test_missing_study_path_says_no_such_file(tmp_path):
    with pytest.raises(StudyFileError, match="no such file$"):
        studyfile.resolve(str(tmp_path / "mine.toml"))


def test_scalar_list_and_table_become_fixed_choice_and_range(tmp_path):
    path = write_study(tmp_path, retrain_epochs="2")
    spec = studyfile.load(str(path))
    assert spec.space["retrain_epochs"] == Fixed(2)
    assert spec.space["reinit"] == Choice(("finetune", "rewind", "random"))
    assert spec.space["iterations"] == Range(1, 2, integer=True)
    assert spec.data.val_size == 50 and spec.model.width == 4


BAD_EDITS = {
    "unknown top-level key": (('n_trials = 2', 'n_trials = 2\ntrials = 3'), "trials", "unknown key"),
    "unknown key in a section": (("width = 4", "width = 4\ndepth = 3"), "model.depth", "unknown key"),
    "wrong type": (("n_trials = 2", 'n_trials = "two"'), "n_trials", "an integer >= 1"),
    "amount at 1": (("high = 0.5", "high = 1.0"), "space.amount.high", "(0, 1)"),
    "amount at 0": (("low = 0.2", "low = 0.0"), "space.amount.low", "(0, 1)"),
    "negative retrain epochs": (("retrain_epochs = 1", "retrain_epochs = -1"),
                                "space.retrain_epochs", ">= 0"),
    "negative dense epochs": (("epochs = 3", "epochs = -3"), "dense.epochs", ">= 1"),
    "unknown method": (('"l1_unstructured"', '"l3_magic"'), "space.method", "l1_unstructured"),
    "unknown re-init": (('"random"]', '"shuffle"]'), "space.reinit", "finetune"),
    "unknown sampler": (('"tpe"', '"cmaes"'), "sampler", "nsga2"),
    "unknown model": (("[model]", '[model]\nname = "resnet"'), "model.name", "cifar_cnn"),
    "range low above high": (("low = 1, high = 2", "low = 3, high = 2"),
                             "space.iterations.high", ">= low"),
    "rewind after dense training": (("batch_size = 32", "batch_size = 32\nrewind_epoch = 5"),
                                    "dense.rewind_epoch", "<= dense.epochs"),
    "missing required space key": (('reinit = ["finetune", "rewind", "random"]', ""),
                                   "space.reinit", "required"),
    "malformed TOML": (("n_trials = 2", "n_trials = = 2"), "", "not valid TOML"),
    "option no listed method reads": (("[space]", "[space]\nnorm = [1, 2]"), "space.norm",
                                      "only read by global_structured, ln_structured"),
    "norm of 3": (('method = "l1_unstructured"', 'method = "ln_structured"\nnorm = 3'),
                  "space.norm", "1 or 2"),
    "accuracy floor above 1": (("n_trials = 2", "n_trials = 2\naccuracy_floor = 60"),
                               "accuracy_floor", "[0, 1]"),
    "unknown objective": (("n_trials = 2", 'n_trials = 2\nobjectives = ["val_accuracy", "flops"]'),
                          "objectives", "macs_reduction"),
    "speedup without timing": (('latency_device = "none"', 'latency_device = "none"\n'
                               'objectives = ["val_accuracy", "speedup"]'),
                               "latency_device", "speedup objective needs cpu, cuda or onnxruntime"),
    "grid over a range": (('sampler = "tpe"', 'sampler = "grid"'), "space.amount",
                          "needs a list of values"),
    "latency budget, nothing timed": (('latency_device = "none"', 'latency_device = "none"'
                                      "\nmax_latency_ms = 5"), "max_latency_ms",
                                     "needs latency_device cpu, cuda or onnxruntime"),
    "noise budget, nothing timed": (('latency_device = "none"', 'latency_device = "none"'
                                    "\nmax_speedup_noise = 0.2"), "max_speedup_noise",
                                   "needs latency_device cpu, cuda or onnxruntime"),
    "batch sizes out of order": (("n_trials = 2", "n_trials = 2\nlatency_batch_sizes = [64, 1]"),
                                 "latency_batch_sizes", "smallest first"),
    "batch size of 0": (("n_trials = 2", "n_trials = 2\nlatency_batch_sizes = [0, 8]"),
                        "latency_batch_sizes", "integers from 1 to 4096"),
    "no batch size": (("n_trials = 2", "n_trials = 2\nlatency_batch_sizes = []"),
                      "latency_batch_sizes", "a list of 1 to 4"),
    "batch size in words": (("n_trials = 2", 'n_trials = 2\nlatency_batch_sizes = ["one"]'),
                            "latency_batch_sizes", "distinct integers"),
    "a batch size twice": (("n_trials = 2", "n_trials = 2\nlatency_batch_sizes = [8, 8]"),
                           "latency_batch_sizes", "distinct integers"),
    "percentage budget of 150%": (("n_trials = 2", 'n_trials = 2\nmax_macs = "150%"'),
                                  "max_macs", 'between "0%" and "100%"'),
    "budget in words": (("n_trials = 2", 'n_trials = 2\nmax_params = "small"'), "max_params",
                        "a number > 0 or a percentage"),
    "MACs budget the dense model keeps": (("n_trials = 2", "n_trials = 2\nmax_macs = 20e9"),
                                          "max_macs", "constrains nothing"),
    "parameter budget out of reach": (("n_trials = 2", 'n_trials = 2\nmax_params = "10%"'),
                                      "max_params", "no schedule of this space leaves fewer"),
    "negative accuracy drop": (("n_trials = 2", "n_trials = 2\nmax_accuracy_drop = -0.01"),
                               "max_accuracy_drop", "[0, 1)"),
    "round_to of 0": (('method = "l1_unstructured"', 'method = "ln_structured"\nround_to = 0'),
                      "space.round_to", ">= 1"),
    "infinite dense lr": (("batch_size = 32", "batch_size = 32\nlr = inf"), "dense.lr",
                          "a number > 0"),
    "infinite weight decay": (("batch_size = 32", "batch_size = 32\nweight_decay = inf"),
                              "dense.weight_decay", "a number >= 0"),
    "infinite retraining lr": (("[space]", "[space]\nretrain_lr = inf"), "space.retrain_lr",
                               "a number > 0"),
    "infinite latency budget": (("n_trials = 2", "n_trials = 2\nmax_latency_ms = inf"),
                                "max_latency_ms", "a number > 0"),
    "infinite range end": (("low = 0.2, high = 0.5", "low = 0.2, high = inf"),
                           "space.amount.high", "(0, 1)"),
}


@pytest.mark.parametrize("edit", BAD_EDITS.values(), ids=BAD_EDITS.keys())
def test_bad_study_file_is_one_line_exit_2_and_writes_nothing(workdir, edit):
    (old, new), key, allowed = edit
    path = write_study(workdir, name="bad.toml", retrain_epochs="1")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    before = contents(workdir)

    result = CliRunner().invoke(main, ["optimize", "--study", str(path)])

    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert "\n" not in message and "Traceback" not in message
    assert str(path) in message and key in message and allowed in message
    assert contents(workdir) == before  # no store created


@pytest.mark.parametrize("changes, timed", [
    ({}, "none"),  # l1_unstructured: dense kernels, a speed-up of 1 whatever is pruned
    ({"space": {"method": "ln_structured"}}, "cpu"),
    ({"objectives": ["val_accuracy", "speedup"]}, "cpu"),
    ({"max_latency_ms": 5.0}, "cpu"),
    ({"latency_device": "cpu"}, "cpu"),  # asked for: timed
])
def test_latency_is_timed_by_default_only_where_a_figure_can_use_it(tmp_path, changes, timed):
    from prunesearch.testing import studies

    path = studies.study_file(tmp_path / "s.toml", **changes)  # the smoke study, changed
    spec = studyfile.load(str(path))
    assert studyfile.timed_device(spec) == timed
    # At auto the fingerprint leaves it out: a study stored when cpu was the default resumes.
    assert ("latency_device" in studyfile.fingerprint(spec)) == ("latency_device" in changes)
