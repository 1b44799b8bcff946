"""Timings others cannot move: a quiet moment waits for paced work in other processes and
stops it meanwhile; a model is timed against its reference in alternating blocks."""

import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from prunesearch import costs, quiet

# A process working through paced steps, counting each in a file.
WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from prunesearch import quiet
    counter = Path(sys.argv[1])
    for step in quiet.paced(range(400)):
        counter.write_text(str(step))
        time.sleep(0.02)
""")


@pytest.fixture
def private_lock(tmp_path, monkeypatch):
    """The host-wide lock moved into this test's folder (for child processes too)."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(quiet, "_lock", None)
    monkeypatch.setenv(quiet.GATE_ENV, "on")
    return tmp_path


def steps_done(counter) -> int:
    text = counter.read_text() if counter.exists() else ""
    return int(text) if text else -1


def start_worker(folder):
    counter = folder / "steps"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(counter)])
    deadline = time.monotonic() + 60
    while steps_done(counter) < 5:  # started, and holding its share
        assert worker.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return worker, counter


def test_a_quiet_moment_comes_within_a_hold_and_other_work_waits_through_it(private_lock):
    worker, counter = start_worker(private_lock)
    try:
        asked = time.monotonic()
        with quiet.moment():
            waited = time.monotonic() - asked
            before = steps_done(counter)
            time.sleep(1.0)  # 50 steps' worth of the worker's time
            during = steps_done(counter) - before
        time.sleep(1.0)
        after = steps_done(counter) - before - during
    finally:
        worker.kill()
        worker.wait()
    assert waited < quiet.HOLD_S + 1.0  # the worker let go at its next renewal
    assert during <= 1  # at most the step in flight when the moment began
    assert after > 10  # and went on once it ended


def test_with_the_gate_off_a_moment_does_not_wait(private_lock, monkeypatch):
    worker, counter = start_worker(private_lock)
    try:
        monkeypatch.setenv(quiet.GATE_ENV, "off")
        with quiet.moment():
            before = steps_done(counter)
            time.sleep(1.0)
            during = steps_done(counter) - before
    finally:
        worker.kill()
        worker.wait()
    assert during > 10


def test_a_model_is_timed_against_its_reference_in_alternating_blocks():
    one = nn.Sequential(nn.Linear(256, 256))
    eight = nn.Sequential(*[nn.Linear(256, 256) for _ in range(8)])
    example = torch.zeros(1, 256)
    timing = costs.time_against(one, eight, example, 64, rounds=5)
    assert timing.reference_ms > timing.latency_ms > 0
    assert timing.speedup > 2  # eight layers against one: about 8, whatever the noise
    assert timing.spread >= 0
