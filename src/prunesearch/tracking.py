"""MLflow logging; the only module that imports mlflow.

One experiment per study, one parent run per study (its id is kept on the Optuna study, so
any process finds it again), one child run per trial. Every call goes through MlflowClient
with explicit run ids: no global "active run" state, so several processes can share a study.
A stop request never cuts a write short: it is taken only where the work checks for it
(see interrupts), never in here.
"""

import logging
import math
import os
import tempfile
import time
from pathlib import Path

from prunesearch import report
from prunesearch.loop import FIGURES
from prunesearch.objectives import joined, plot_axis
from prunesearch.errors import ExportError, StorageError

log = logging.getLogger(__name__)
DEFAULT_TRACKING_FILE = "mlflow.db"


def resolve_uri(tracking_uri: str | None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else a SQLite file in the working directory
    (made absolute: MLflow caches stores by URI, and the URI is shown to the user)."""
    return (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{Path(DEFAULT_TRACKING_FILE).resolve()}")


class StudyTracker:
    def __init__(self, tracking_uri: str):
        from mlflow.tracking import MlflowClient

        # After the import, which sets mlflow's own levels: database set-up chatter off.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Artifact transfers are small and quick; their progress bars only clutter the output.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

        self.uri = tracking_uri
        if tracking_uri.startswith(("http://", "https://")):
            _check_server(tracking_uri)
        elif tracking_uri.startswith("sqlite:///"):
            folder = Path(tracking_uri.removeprefix("sqlite:///")).parent
            if not folder.is_dir():
                raise StorageError(f"MLflow tracking store {tracking_uri} cannot be used: the "
                                   f"folder {folder} does not exist")
        self.client = MlflowClient(tracking_uri=tracking_uri)
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
                parent_run_id = self.client.create_run(
                    self.experiment_id, run_name=study_name,
                    tags={"prunesearch.study": study_name, "prunesearch.role": "study",
                          "mlflow.note.content": description}).info.run_id
        except MlflowException as error:
            raise StorageError(f"MLflow tracking store {self.uri} cannot be used: "
                               f"{str(error).splitlines()[0]}") from None
        self.parent_run_id = parent_run_id
        return parent_run_id

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

    def start_trial(self, *, study_name: str, trial_number: int, params: dict) -> str:
        """A child run for one trial, with its schedule as params."""
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id, run_name=f"trial-{trial_number}",
            tags={"mlflow.parentRunId": self.parent_run_id, "prunesearch.study": study_name,
                  "prunesearch.trial": str(trial_number), "prunesearch.state": "RUNNING",
                  "prunesearch.role": "trial"})
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run_id

    def log_iteration(self, run_id: str, figures: dict) -> None:
        """A loop.IterationResult (as a dict) as metrics at step = iteration (iteration 0: the
        dense model); NaN ones (e.g. no retraining) skipped."""
        from mlflow.entities import Metric

        step = figures["iteration"]
        timestamp = _now_ms()
        metrics = [Metric(key, float(figures[key]), timestamp, step)
                   for key in FIGURES
                   if key in figures and not math.isnan(float(figures[key]))]
        self.client.log_batch(run_id, metrics=metrics)

    def end_trial(self, run_id: str, *, state: str, final: dict | None = None,
                  reason: str | None = None) -> None:
        """Close a child run: state COMPLETE -> FINISHED; FAIL -> FAILED; interrupted -> KILLED."""
        from mlflow.entities import Metric

        if final:
            timestamp = _now_ms()
            self.client.log_batch(run_id, metrics=[
                Metric(f"final_{key}", float(final[key]), timestamp, 0)
                for key in FIGURES if not math.isnan(float(final[key]))])
        self.client.set_tag(run_id, "prunesearch.state", state)
        if reason:
            self.client.set_tag(run_id, "prunesearch.fail_reason", reason[:5000])
        status = {"COMPLETE": "FINISHED", "FAIL": "FAILED"}.get(state, "KILLED")
        self.client.set_terminated(run_id, status=status)

    def log_weights(self, run_id: str, path: Path) -> None:
        """The trial's pruned model, masks made permanent, as artifact `model/<file name>`."""
        self.client.log_artifact(run_id, str(path), artifact_path="model")

    def experiment_id_of(self, study_name: str) -> str | None:
        experiment = self.client.get_experiment_by_name(study_name)
        return experiment.experiment_id if experiment else None

    def download_weights(self, run_id: str, folder: Path) -> Path:
        """The file `log_weights` stored on run `run_id`, downloaded into `folder`."""
        from mlflow.exceptions import MlflowException

        try:
            stored = [a.path for a in self.client.list_artifacts(run_id, "model")
                      if a.path.endswith(".pt")]
            if stored:
                return Path(self.client.download_artifacts(run_id, stored[0], str(folder)))
        except MlflowException as error:
            raise ExportError(f"MLflow run {run_id} in {self.uri} cannot be read: "
                              f"{str(error).splitlines()[0]}") from None
        raise ExportError(f"MLflow run {run_id} in {self.uri} has no model/*.pt artifact")

    def end_study(self, status: str) -> None:
        if self.parent_run_id is not None:
            self.client.set_terminated(self.parent_run_id, status=status)

    def update_pareto(self, *, all_rows: list[dict], front: list[dict], dense: dict,
                      previous_front_run_ids: set[str], objectives: list[str]) -> None:
        """Plot (PNG, and interactive HTML with plotly) and table of the front on the parent
        run; tag child runs on and off it."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            axis = (plot_axis(objectives), joined(objectives))
            report.plot_pareto(all_rows, front, dense, folder / "pareto.png", *axis)
            report.plot_pareto_html(all_rows, front, dense, folder / "pareto.html", *axis)
            (folder / "pareto.json").write_text(report.to_json(front))
            (folder / "pareto.csv").write_text(report.to_csv(front))
            for path in sorted(folder.iterdir()):
                self.client.log_artifact(self.parent_run_id, str(path))
        on_front = {row["mlflow_run_id"] for row in front if row.get("mlflow_run_id")}
        for run_id in on_front:
            self.client.set_tag(run_id, "prunesearch.pareto", "true")
        for run_id in previous_front_run_ids - on_front:
            self.client.set_tag(run_id, "prunesearch.pareto", "false")
        self.client.set_tag(self.parent_run_id, "prunesearch.pareto_trials",
                            ",".join(str(row["trial"]) for row in front))


def _check_server(uri: str, timeout_s: float = 10) -> None:
    """Fail in one line now if the tracking server does not answer, rather than after MLflow's
    minutes of retries."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s):
            return
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise StorageError(f"MLflow tracking server {uri} cannot be reached ({reason}); start "
                           "it (`mlflow server ...`) or pass another --tracking-uri") from None


def _now_ms() -> int:
    return int(time.time() * 1000)
