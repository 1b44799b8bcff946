"""What reading a study costs: the commands that only read results (status, pareto, best), as
separate processes on a finished study, against `optuna studies` on the same storage; and
`pareto` on a study whose network is large (resnet56-filters) against one whose network is
small (smoke), both on an empty storage, where reading the file is all there is to do. Each
pair is timed in turns, the order rotating each round; the ratios are the medians of the
rounds' ratios. Peak memory (max RSS) is each process's own: the commands are started by a
process that has not imported torch, as a process forked from a large one reports that
one's peak.

    python -m benchmarks.reading [--rounds 5]
    python -m benchmarks.reading --smoke   # one round
    # only the measuring, on stores made before (another version: PYTHONPATH=OTHER/src)
    python -m benchmarks.reading --measure sqlite:///o.db sqlite:///empty.db ROUNDS
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def run(argv: list[str]) -> tuple[float, float]:
    """(Seconds, peak RSS in MB) of one command run to its end."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        pid = os.posix_spawn(str(BIN / argv[0]), argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
        _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    assert os.waitstatus_to_exitcode(status) in (0, 1), (argv, status)
    return seconds, usage.ru_maxrss / 1024


def paired(commands: dict[str, list[str]], rounds: int) -> dict[str, list]:
    """Each command's (seconds, MB) per round, taking turns."""
    names = list(commands)
    found = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            found[name].append(run(commands[name]))
    return found


def report(found: dict[str, list], reference: str) -> dict:
    """Median seconds and MB of each command, and its median ratio of time to `reference`'s."""
    figures = {}
    for name, runs in found.items():
        ratio = statistics.median(s / r for (s, _), (r, _) in zip(runs, found[reference]))
        figures[name] = {"s": statistics.median(s for s, _ in runs),
                         "mb": statistics.median(mb for _, mb in runs), "ratio": ratio}
        print(f"  {name:<34} {figures[name]['s']:6.2f} s {figures[name]['mb']:6.0f} MB"
              f"   {ratio:5.2f}x {reference}")
    return figures


def measure(storage: str, empty: str, rounds: int) -> dict:
    """Print and return the two comparisons; run without torch imported."""
    print(f"a finished smoke study, {rounds} round(s) in turns:")
    finished = report(paired({
        "optuna studies": ["optuna", "studies", "--storage", storage],
        "prunesearch status": ["prunesearch", "status", "--study", "smoke", "--storage", storage],
        "prunesearch pareto": ["prunesearch", "pareto", "--study", "smoke", "--storage", storage],
        "prunesearch best": ["prunesearch", "best", "--study", "smoke", "--storage", storage],
    }, rounds), "optuna studies")
    print("pareto on an empty storage:")
    unread = report(paired({
        "pareto --study smoke": ["prunesearch", "pareto", "--study", "smoke", "--storage", empty],
        "pareto --study resnet56-filters": ["prunesearch", "pareto", "--study",
                                            "resnet56-filters", "--storage", empty],
    }, rounds), "pareto --study smoke")
    return {"finished": finished, "empty": unread}


def main(argv: list[str] | None = None) -> None:
    if argv is None and sys.argv[1:2] == ["--measure"]:  # the torch-free measuring process
        storage, empty, rounds = sys.argv[2:5]
        measure(storage, empty, int(rounds))
        return
    from benchmarks import common
    from prunesearch.config import studyfile
    from prunesearch.testing import data as testing_data

    parser = common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)  # what is read, not what was trained, is measured: tiny data
        common.run_study(common.smoke_sized(studyfile.load("smoke")), folder,
                         testing_data.cifar_folder(folder / "data"))
        # Measured in a process of its own that has imported nothing yet; its table printed here
        stores = [f"sqlite:///{folder / 'o.db'}", f"sqlite:///{folder / 'empty.db'}"]
        measured = subprocess.run([sys.executable, "-m", "benchmarks.reading", "--measure",
                                   *stores, str(1 if args.smoke else args.rounds)],
                                  check=True, stdout=subprocess.PIPE, text=True)
        print(measured.stdout, end="")


if __name__ == "__main__":
    main()
