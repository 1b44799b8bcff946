"""What a reviewer sees, in a real browser: `prunesearch ui` started on a finished study, the
addresses it prints opened in headless Chromium (Debian's package, driven by Playwright without
a browser download of its own), and optuna-dashboard on the same storage.

With PRUNESEARCH_SCREENSHOTS=FOLDER the pages are also saved there as PNG files: the README's
screenshots are made with
`PRUNESEARCH_SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/test_browser.py`.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from prunesearch.cli import main

from conftest import PortTaken, on_a_free_port, working_in, write_study

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: "
                                                         "apt-get install chromium)")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
VIEWPORT = {"width": 1600, "height": 1000}


@pytest.fixture(scope="module")
def reviewed_study(tmp_path_factory, cifar_dir):
    """A finished 4-trial study in a folder of its own: (folder, trial runs by name)."""
    folder = tmp_path_factory.mktemp("review")
    with working_in(folder, cifar_dir):
        path = write_study(folder, settings='latency_device = "none"')
        path.write_text(path.read_text().replace("n_trials = 2", "n_trials = 4"))
        result = CliRunner().invoke(main, ["optimize", "--study", str(path)])
        assert result.exit_code == 0, result.output
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny").experiment_id
    trials = {run.info.run_name: run for run in client.search_runs([experiment])
              if run.data.tags.get("prunesearch.role") == "trial"}
    assert len(trials) == 4
    return folder, trials


def start(command: list[str], folder: Path, port: int, ready: str):
    """`command --port PORT` in `folder`, its output to `folder`/server.log, once `ready` on it
    answers (a file, not a pipe: a server's request log would fill a pipe nobody reads)."""
    log = (folder / "server.log").open("w")
    server = subprocess.Popen([*command, "--port", str(port)], cwd=folder, text=True,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server.port, server.log = port, folder / "server.log"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=2):
                return server
        except OSError:
            if server.poll() is not None:
                raise PortTaken(server.log.read_text())
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    pytest.fail(f"{command[:4]} did not answer within two minutes")


def stop(server) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:  # optuna-dashboard's server may not stop on a signal
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture
def browser():
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium.new_page(viewport=VIEWPORT)
        chromium.close()


def snapshot(page, name: str) -> None:
    """Save the page as docs' screenshot `name`, when asked to (module docstring), without
    MLflow's assistant panel and its shared-view banner (a reader can close both)."""
    folder = os.environ.get("PRUNESEARCH_SCREENSHOTS")
    if not folder:
        return
    for component in ("mlflow.assistant.chat_panel.close",
                      "mlflow.experiment_page.shared_view.dismiss"):
        button = page.locator(f"button[data-component-id='{component}']")
        if button.count():
            button.first.click()
    time.sleep(1)  # the layout settles
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(folder) / f"{name}.png"))


@pytest.mark.slow
def test_the_addresses_prunesearch_ui_prints_show_the_trials_and_the_front(reviewed_study,
                                                                           browser):
    folder, trials = reviewed_study
    command = [sys.executable, "-m", "prunesearch", "ui", "--study", "tiny"]
    server = on_a_free_port(lambda port: start(command, folder, port, "/health"))
    try:
        page = browser
        output = server.log.read_text()
        addresses = dict(re.findall(r"^  (trials|front chart|study run): +(\S+)$", output,
                                    flags=re.MULTILINE))
        assert set(addresses) == {"trials", "front chart", "study run"}, output

        # The trials as rows, in Model training mode, sorted by validation accuracy.
        page.goto(addresses["trials"])
        best = max(trials.values(), key=lambda run: run.data.metrics["final_val_accuracy"])
        page.get_by_text(best.info.run_name).first.wait_for(timeout=60_000)
        body = page.inner_text("body")
        # Model training mode: its sidebar (Runs, Models), not GenAI's (Sessions, Judges).
        assert "Models" in body and "Judges" not in body and "Sessions" not in body
        for name, run in trials.items():
            assert name in body
            for metric in ("final_val_accuracy", "final_sparsity", "final_test_accuracy"):
                assert metric in body
                assert str(run.data.metrics[metric]) in body, (name, metric)
        worse = [name for name, run in trials.items() if run.data.metrics["final_val_accuracy"]
                 < best.data.metrics["final_val_accuracy"]]
        assert all(body.index(best.info.run_name) < body.index(name) for name in worse)
        snapshot(page, "trials")

        # The front as a chart, and its picture.
        page.goto(addresses["front chart"])
        page.get_by_text("Pareto front").first.wait_for(timeout=60_000)
        # The image chart of pareto_front: MLflow up to 3.17 loads it by its artifact path,
        # 3.18 as a blob: URL (the chart's only image either way).
        image = page.locator("img[src*='pareto_front'], img.rc-image-img[src^='blob:']").first
        image.wait_for(timeout=60_000)
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                               arg=image.element_handle(), timeout=60_000)
        assert "final_sparsity" in page.inner_text("body")
        snapshot(page, "front-chart")

        # The study run: its overview ends with the front's table.
        page.goto(addresses["study run"])
        page.get_by_text("Pareto front").first.wait_for(timeout=60_000)
        more = page.get_by_text("Show more")
        if more.count():
            more.first.click()
        text = page.inner_text("body")
        assert "Pareto front" in text and "val acc %" in text and "schedule" in text
        snapshot(page, "study-run")

        # A trial's run: its per-iteration curves.
        run = best.info
        page.goto(f"{addresses['study run'].split('/runs/')[0]}/runs/{run.run_id}/model-metrics"
                  "?workflowType=machine_learning")
        page.get_by_text("final_val_accuracy", exact=True).first.wait_for(timeout=60_000)
        page.get_by_placeholder("Search metric charts").fill(
            "^(val_accuracy|test_accuracy|sparsity|macs_reduction)$")
        page.get_by_text("val_accuracy", exact=True).first.wait_for(timeout=60_000)
        # Each a curve over the iterations: a plot whose x axis is the step.
        playwright.expect(page.locator("svg text", has_text="Step")).to_have_count(
            4, timeout=60_000)
        snapshot(page, "trial-curves")
    finally:
        stop(server)


@pytest.mark.slow
def test_optuna_dashboard_shows_the_same_front(reviewed_study, browser):
    folder, _ = reviewed_study
    dashboard = shutil.which("optuna-dashboard") or str(Path(sys.executable).parent /
                                                        "optuna-dashboard")
    command = [dashboard, "sqlite:///prunesearch.db", "--host", "127.0.0.1"]
    server = on_a_free_port(lambda port: start(command, folder, port, "/api/studies"))
    try:
        browser.goto(f"http://127.0.0.1:{server.port}/dashboard/studies/1")
        browser.get_by_text("Pareto Front", exact=False).first.wait_for(timeout=60_000)
        browser.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        assert "tiny" in browser.inner_text("body")
        snapshot(browser, "optuna-dashboard")
    finally:
        stop(server)
