"""MLflow logging; the only module that imports mlflow.

One experiment per study, one parent run per study (its id is kept on the Optuna study, so
any process finds it again), one child run per trial. Every call goes through MlflowClient
with explicit run ids: no global "active run" state, so several processes can share a study.
A stop request never cuts a write short: it is taken only where the work checks for it
(see interrupts), never in here. Every call rides out an outage of the tracking server or
store (see outages); a run is created at most once however often its creation is retried.
"""

import functools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from prunesearch.errors import DiskFull, ExportError, StorageError
from prunesearch.stores import outages

log = logging.getLogger(__name__)
DEFAULT_TRACKING_FILE = "mlflow.db"
COMPARE_EXPERIMENT = "prunesearch-compare"


def resolve_uri(tracking_uri: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else a SQLite file in the working directory
    (made absolute: MLflow caches stores by URI, and the URI is shown to the user)."""
    return (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{Path(DEFAULT_TRACKING_FILE).resolve()}")


# The client's upserts: writing the same tag, param, metric or dataset input again is harmless,
# so one that lost a race with another worker's may be retried (outages.retry_lost_race).
_UPSERTS = frozenset({"set_tag", "set_experiment_tag", "log_batch", "log_inputs"})


class _Retried:
    """A client whose every method call goes through outages.call; its upserts are also
    retried when they lose a race with another worker's."""

    def __init__(self, client, service: str, wait_s: float):
        self._client, self._service, self._wait_s = client, service, wait_s

    def __getattr__(self, name: str):
        member = getattr(self._client, name)
        if not callable(member):
            return member
        call = functools.partial(outages.call, self._service, f"MLflow {name}", member,
                                 wait_s=self._wait_s, is_transient=transient)
        return outages.retry_lost_race(call) if name in _UPSERTS else call


class StudyTracker:
    def __init__(self, tracking_uri: str, *, outage_wait_s: float = outages.DEFAULT_WAIT_S,
                 reached_before: bool = False):
        """A tracking server that has not answered this process once is refused at once (a
        wrong address, far more often than an outage); with `reached_before` (a worker of
        --jobs), and after its first answer, an outage is waited out up to `outage_wait_s`."""
        from mlflow.tracking import MlflowClient

        # After the import, which sets mlflow's own levels: database set-up chatter off.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Artifact transfers are small and quick; their progress bars only clutter the output.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # Outages are waited out in outages.call, which says so; MLflow's own silent retries
        # (minutes by default) would only hide them.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        # A run ended on a server prints its address on stdout, which holds a command's own
        # output (the front's table, the command `prepare` prints for its workers).
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

        self.uri = tracking_uri
        if tracking_uri.startswith(("http://", "https://")):
            _check_server(tracking_uri, outage_wait_s if reached_before else 0)
        elif tracking_uri.startswith("sqlite:///"):
            folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
            if not folder.is_dir():
                raise StorageError(f"MLflow tracking store {tracking_uri} cannot be used: the "
                                   f"folder {folder} does not exist")
        self.raw_client = MlflowClient(tracking_uri=tracking_uri)
        self.service = ("MLflow tracking server " if tracking_uri.startswith("http")
                        else "MLflow tracking store ") + tracking_uri
        self.outage_wait_s = outage_wait_s
        self.client = _Retried(self.raw_client, self.service, outage_wait_s)
        self.experiment_id = None
        self.parent_run_id = None

    def open_study(self, *, study_name: str, parent_run_id: str | None,
                   description: str) -> str:
        """Find (or create) the study's experiment and parent run; return the parent's id.

        The parent is marked RUNNING while this process works on the study.
        """
        from mlflow.exceptions import MlflowException

        try:
            experiment = self.client.get_experiment_by_name(study_name)
            self.experiment_id = (experiment.experiment_id if experiment else
                                  self.client.create_experiment(study_name))
            # Opens the experiment on its runs table rather than MLflow 3's GenAI overview.
            self.client.set_experiment_tag(self.experiment_id, "mlflow.experimentKind",
                                           "custom_model_development")
            if parent_run_id is not None and self._run_exists(parent_run_id):
                self.client.update_run(parent_run_id, status="RUNNING")
            else:
                parent_run_id = self._create_run_once(
                    run_name=study_name,
                    tags={"prunesearch.study": study_name, "prunesearch.role": "study",
                          "mlflow.note.content": description})
        except MlflowException as error:
            raise StorageError(f"MLflow tracking store {self.uri} cannot be used: "
                               f"{str(error).splitlines()[0]}") from None
        self.parent_run_id = parent_run_id
        return parent_run_id

    def _create_run_once(self, *, run_name: str, tags: dict) -> str:
        """A new run's id. A retry first looks for the run an attempt whose answer was lost
        may have made (by a tag unique to this creation), so no run is made twice."""
        attempt = uuid.uuid4().hex
        tags = {**tags, "prunesearch.attempt": attempt}

        def create() -> str:
            made = self.raw_client.search_runs(
                [self.experiment_id], f"tags.`prunesearch.attempt` = '{attempt}'",
                max_results=1)
            return (made[0] if made else self.raw_client.create_run(
                self.experiment_id, run_name=run_name, tags=tags)).info.run_id

        return outages.call(self.service, "MLflow create_run", create,
                             wait_s=self.outage_wait_s, is_transient=transient)

    def end_orphan_trial_runs(self, failed_trials: set[int]) -> None:
        """End KILLED the runs still RUNNING of trials that failed: their worker stopped before
        it could reach MLflow to end them (an outage past the wait)."""
        for run in self.client.search_runs(
                [self.experiment_id], "attributes.status = 'RUNNING' and "
                "tags.`prunesearch.role` = 'trial'"):
            if int(run.data.tags.get("prunesearch.trial", -1)) in failed_trials:
                self.end_trial(run.info.run_id, state="INTERRUPTED",
                               reason="its worker stopped before it could end this run")

    def _run_exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.experiment_id == self.experiment_id
        except MlflowException:
            return False

    def log_study_params(self, params: dict) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.parent_run_id).data.params
        new = [Param(key, str(value)) for key, value in params.items() if key not in existing]
        if new:
            self.client.log_batch(self.parent_run_id, params=new)

    def start_trial(self, *, study_name: str, trial_number: int, params: dict,
                    described: str, timed_on: str) -> str:
        """A child run for one trial, named by its number and `described` (its schedule in
        short), with its schedule as params and where its latency is timed as a tag."""
        from mlflow.entities import Param

        run_id = self._create_run_once(
            run_name=f"trial {trial_number}: {described}",
            tags={"mlflow.parentRunId": self.parent_run_id, "prunesearch.study": study_name,
                  "prunesearch.trial": str(trial_number), "prunesearch.state": "RUNNING",
                  "prunesearch.role": "trial", "prunesearch.timed_on": timed_on})
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run_id

    def log_dataset(self, run_id: str, *, name: str, digest: str, source: str,
                    profile: dict) -> None:
        """The data a run trained on, as an MLflow dataset input (the runs table's Datasets
        column): its name, fingerprint, folder and split sizes."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest, source_type="local", source=source,
                          profile=json.dumps(profile))
        self.client.log_inputs(run_id, datasets=[DatasetInput(
            dataset, tags=[InputTag("mlflow.data.context", "training")])])

    def update_story(self, *, overview: str, metrics: dict[str, float], step: int) -> None:
        """The study run's description (Markdown on its Overview) and the search's progress as
        metrics at `step` (trials completed)."""
        from mlflow.entities import Metric

        timestamp = _now_ms()
        self.client.set_tag(self.parent_run_id, "mlflow.note.content", overview)
        self.client.log_batch(self.parent_run_id, metrics=[
            Metric(key, float(value), timestamp, step) for key, value in metrics.items()])

    def log_iteration(self, run_id: str, figures: dict) -> None:
        """A figures.IterationResult (as a dict) as metrics at step = iteration (iteration 0: the
        dense model); NaN ones (e.g. no retraining) skipped."""
        from mlflow.entities import Metric

        step = figures["iteration"]
        timestamp = _now_ms()
        metrics = [Metric(key, float(value), timestamp, step)
                   for key, value in figures.items()
                   if key != "iteration" and not math.isnan(float(value))]
        self.client.log_batch(run_id, metrics=metrics)

    def end_trial(self, run_id: str, *, state: str, final: dict | None = None,
                  reason: str | None = None) -> None:
        """Close a child run: state COMPLETE -> FINISHED; STOPPED (early stopping) -> FINISHED,
        tagged so; FAIL -> FAILED; interrupted -> KILLED. `reason`: why it failed or stopped."""
        from mlflow.entities import Metric

        if final:
            timestamp = _now_ms()
            self.client.log_batch(run_id, metrics=[
                Metric(f"final_{key}", float(value), timestamp, 0)
                for key, value in final.items()
                if key != "iteration" and not math.isnan(float(value))])
        self.client.set_tag(run_id, "prunesearch.state", state)
        if reason:
            kind = "stop_reason" if state == "STOPPED" else "fail_reason"
            self.client.set_tag(run_id, f"prunesearch.{kind}", reason[:5000])
        status = {"COMPLETE": "FINISHED", "STOPPED": "FINISHED", "FAIL": "FAILED"}.get(
            state, "KILLED")
        self.client.set_terminated(run_id, status=status)

    def log_weights(self, run_id: str, path: Path, *, iteration: int) -> None:
        """The trial's pruned model after `iteration`, masks made permanent, as artifact
        `model/iteration-K/<file name>`."""
        self._log_artifact(run_id, path, artifact_path=weights_folder(iteration))

    def log_plan(self, run_id: str, plan: dict) -> None:
        """How a trial shares its amount among units (allocation.Plan.as_dict()): the
        projection's factor as a parameter, every unit's share as allocation.json."""
        self.client.log_param(run_id, "projection_factor", f"{plan['factor']:.6g}")
        self.client.log_dict(run_id, plan, "allocation.json")

    def log_study_file(self, path: Path, *, folder: str) -> None:
        """A file of the whole study (a sensitivity scan) in the study run's `folder`."""
        self._log_artifact(self.parent_run_id, path, artifact_path=folder)

    def download_study_file(self, name: str, *, folder: str, into: Path) -> Path | None:
        """The file `log_study_file` stored as `folder/name` on the study run, downloaded into
        the folder `into`; None if the run has none."""
        from mlflow.exceptions import MlflowException

        try:
            if not any(a.path == f"{folder}/{name}"
                       for a in self.client.list_artifacts(self.parent_run_id, folder)):
                return None
            return Path(self.client.download_artifacts(self.parent_run_id, f"{folder}/{name}",
                                                       str(into)))
        except MlflowException as error:
            raise StorageError(f"MLflow run {self.parent_run_id} in {self.uri} cannot be read: "
                               f"{str(error).splitlines()[0]}") from None

    def _log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """log_artifact; a full disk named by the run's artifact folder (MLflow's own error
        names no file)."""
        try:
            self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)
        except DiskFull:
            folder = self.client.get_run(run_id).info.artifact_uri
            raise DiskFull(folder, f"{path.name} (MLflow artifacts)") from None

    def register_model(self, run_id: str, model, example_input, *, name: str,
                       tags: dict[str, str], files: list[Path] = ()) -> str:
        """Save `model` as an MLflow PyTorch model (its signature inferred on
        `example_input`) under artifact `registered-model` of run `run_id`, `files` (the
        exported model.onnx) beside it, and register it as a new version of `name`, tagged;
        the version's number."""
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        with torch.inference_mode():
            outputs = model(example_input)
        signature = infer_signature(example_input.numpy(), outputs.numpy())
        with tempfile.TemporaryDirectory() as tmp:
            saved = Path(tmp) / "registered-model"
            # Pickled, so it loads as the nn.Module it is, for any batch size (MLflow's pt2
            # would fix the batch to the example's); loading needs prunesearch installed.
            mlflow.pytorch.save_model(model, str(saved), signature=signature,
                                      serialization_format="pickle")
            for path in files:
                shutil.copy(path, saved / path.name)
            self.client.log_artifacts(run_id, str(saved), artifact_path="registered-model")
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        version = self.client.create_model_version(
            name, source=f"runs:/{run_id}/registered-model", run_id=run_id, tags=tags)
        return version.version

    def log_comparison(self, studies: list[str], folder: Path) -> str:
        """A finished run of the experiment `prunesearch-compare` holding the files in
        `folder` (the fronts of `studies` side by side); its id."""
        return self.log_report(COMPARE_EXPERIMENT, " vs ".join(studies), folder,
                               tags={"prunesearch.role": "comparison",
                                     "prunesearch.studies": ",".join(studies)})

    def log_report(self, experiment_name: str, run_name: str, folder: Path, *,
                   tags: dict[str, str]) -> str:
        """A finished run `run_name` of experiment `experiment_name` (created if need be),
        tagged, holding the files in `folder`; its id."""
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = (experiment.experiment_id if experiment else
                         self.client.create_experiment(experiment_name))
        run_id = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        for path in sorted(folder.iterdir()):
            self._log_artifact(run_id, path)
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    def experiment_id_of(self, study_name: str) -> str | None:
        experiment = self.client.get_experiment_by_name(study_name)
        return experiment.experiment_id if experiment else None

    def download_weights(self, run_id: str, folder: Path, *, iteration: int,
                         final: bool) -> Path:
        """The file `log_weights` stored on run `run_id` after `iteration` (`final`: the
        trial's last, which runs recorded before iterations were kept hold in `model/`),
        downloaded into `folder`."""
        from mlflow.exceptions import MlflowException

        places = [weights_folder(iteration), *(["model"] if final else [])]
        try:
            for place in places:
                stored = [a.path for a in self.client.list_artifacts(run_id, place)
                          if a.path.endswith(".pt")]
                if stored:
                    return Path(self.client.download_artifacts(run_id, stored[0], str(folder)))
        except MlflowException as error:
            raise ExportError(f"MLflow run {run_id} in {self.uri} cannot be read: "
                              f"{str(error).splitlines()[0]}") from None
        raise ExportError(f"MLflow run {run_id} in {self.uri} has no {places[0]}/*.pt artifact")

    def end_study(self, status: str) -> None:
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status=status)

    def upload_front(self, folder: Path, *, front: list[tuple[int, str | None]],
                     previous_front_run_ids: set[str]) -> None:
        """The front as views rendered it (every file in `folder`: plots, table) on the study
        run; the runs of the models on it, `front` as (trial, run id), tagged on it, and the
        runs that left it tagged off."""
        for path in sorted(folder.iterdir()):
            self._log_artifact(self.parent_run_id, path)
        on_front = {run_id for _, run_id in front if run_id}
        for run_id in on_front:
            self.client.set_tag(run_id, "prunesearch.pareto", "true")
        for run_id in previous_front_run_ids - on_front:
            self.client.set_tag(run_id, "prunesearch.pareto", "false")
        self.client.set_tag(self.parent_run_id, "prunesearch.pareto_trials",
                            ",".join(str(trial) for trial, _ in front))


    def log_image(self, run_id: str, path: Path, *, key: str, step: int) -> None:
        """The PNG at `path` as the image `key` of run `run_id` at `step`: MLflow shows it on
        the run's Model metrics and in the runs page's charts, not only as a file; of images
        logged at one step, the latest."""
        from PIL import Image

        with Image.open(path) as image:
            self.client.log_image(run_id, image.convert("RGB"), key=key, step=step)

    def share_view(self, experiment_id: str, tag: str, state: dict) -> None:
        """A view of the experiment's runs page (views.mlflow_pages) under experiment tag
        `tag`, which MLflow's UI opens from its share key."""
        self.client.set_experiment_tag(experiment_id, tag, json.dumps(state))


def create_store(tracking_uri: str) -> None:
    """An MLflow store at `tracking_uri` at MLflow's schema: every migration run on a new
    one (about 2 s of CPU; tests and benchmarks copy one made once: prunesearch.testing)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).search_experiments()


def weights_folder(iteration: int) -> str:
    """Where a trial run keeps its model's weights after `iteration`."""
    return f"model/iteration-{iteration}"


def _check_server(uri: str, wait_s: float, timeout_s: float = 10) -> None:
    """Fail in one line if the tracking server does not answer within `wait_s` (0: at once,
    for a process it never answered), rather than after MLflow's minutes of retries."""
    import urllib.error
    import urllib.request

    def reach() -> None:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            return

    try:
        outages.call(f"MLflow tracking server {uri}", "the first connection", reach,
                      wait_s=wait_s, is_transient=lambda error: isinstance(error, OSError))
    except (outages.ServiceUnavailable, urllib.error.URLError, OSError, ValueError) as error:
        cause = error.error if isinstance(error, outages.ServiceUnavailable) else error
        reason = getattr(cause, "reason", cause)
        first = "" if wait_s else (
            "; it has not answered once, so this is taken as a wrong address, not an outage "
            "(--outage-wait covers services that answered)")
        raise StorageError(f"MLflow tracking server {uri} cannot be reached ({reason}){first}; "
                           "start it (`mlflow server ...`) or pass another --tracking-uri"
                           ) from None


def transient(error: BaseException) -> bool:
    """The tracking server could not be reached, timed out, or answered 5xx/429 (restarting,
    its own database away); or a local tracking store's database was unreachable."""
    import requests
    from mlflow.exceptions import MlflowException, RestException

    for e in outages.causes(error):
        if isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                          requests.exceptions.RetryError,  # 5xx from urllib3's status check
                          requests.exceptions.ChunkedEncodingError)):  # cut mid-answer
            return True
        answered = isinstance(e, RestException) or (
            isinstance(e, MlflowException) and str(e).startswith("API request to endpoint"))
        if answered and (e.get_http_status_code() >= 500 or e.get_http_status_code() == 429):
            return True
    return outages.database_transient(error)


def _now_ms() -> int:
    return int(time.time() * 1000)


def start_ui(uri: str, *, host: str, port: int) -> subprocess.Popen:
    """The MLflow UI on tracking store `uri`, in a process group of its own, so that stopping
    it (SIGTERM to the group) stops its workers too. MLflow's job runners (GenAI evaluation
    jobs, two more processes) are left off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION says
    otherwise: reviewing a study runs no jobs."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
         "--port", str(port), "--workers", "1"], start_new_session=True,
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ})
