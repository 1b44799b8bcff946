"""Throwaway services on free loopback ports, for the tests and benchmarks that run workers as
on several machines: a PostgreSQL cluster (Debian's server binaries, initdb) and an
`mlflow server` on one of its databases. Each can be stopped and started again on its port,
as a restarted service would be."""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


class PortTaken(Exception):
    """The server could not start on the port it was given."""


def on_a_free_port(start, attempts: int = 5):
    """`start(port)` on a port that was free a moment ago; should another process take it in
    between (`start` raises PortTaken), again on another."""
    for attempt in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            return start(port)
        except PortTaken:
            if attempt == attempts - 1:
                raise


def server_binary(name: str) -> str | None:
    """On PATH, or where Debian's postgresql package puts it."""
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


INITDB, PG_CTL = server_binary("initdb"), server_binary("pg_ctl")


@dataclass
class Server:
    """A service on a fixed loopback port that can be stopped and started again there."""

    url: str
    stop: Callable[[], None]
    start: Callable[[], None]

    def restart(self, down_s: float = 0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres(databases: tuple[str, ...] = ("optuna", "mlflow"), max_connections: int = 200):
    """A fresh PostgreSQL cluster (trust authentication, user `prunesearch`) holding
    `databases`; its base URL (append `/NAME`)."""
    import psycopg

    # Not under a test's temporary folder, which the `postgres` user may not enter.
    folder = Path(tempfile.mkdtemp(prefix="prunesearch-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(_as_server_user([INITDB, "-D", str(folder / "data"), "-A", "trust",
                                    "-U", "prunesearch"]), check=True, capture_output=True)

    def start_server(port: int) -> int:
        started = subprocess.run(_as_server_user(
            [PG_CTL, "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "start", "-o",
             f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 "
             f"-c max_connections={max_connections}"]), capture_output=True)
        if started.returncode != 0:
            raise PortTaken((folder / "log").read_text(errors="replace")[-2000:])
        return port

    def stop() -> None:  # "fast": every connection is cut, as when a server restarts
        subprocess.run(_as_server_user([PG_CTL, "-D", str(folder / "data"), "-m", "fast",
                                        "stop"]), capture_output=True)

    port = on_a_free_port(start_server)
    url = f"postgresql://prunesearch@127.0.0.1:{port}"
    try:
        with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
            for database in databases:
                connection.execute(f"create database {database}")
        yield Server(url, stop, lambda: start_server(port))
    finally:
        stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, artifacts: Path, *, log: Path, workers: int = 1):
    """`mlflow server` on `backend_store_uri`, artifacts served from the folder `artifacts`,
    its output appended to `log`."""
    process = {}

    def start_server(port: int) -> int:
        with open(log, "ab") as output:
            server = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                 backend_store_uri, "--artifacts-destination", str(artifacts),
                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                stdout=output, stderr=output, start_new_session=True,
                # no job runners (GenAI evaluation jobs): two processes nothing here uses
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    process["server"] = server
                    return port
            except OSError:
                if server.poll() is not None:
                    raise PortTaken("mlflow server exited")
                time.sleep(0.5)
        os.killpg(server.pid, signal.SIGTERM)
        raise RuntimeError("mlflow server did not start within two minutes")

    def stop() -> None:
        server = process.pop("server", None)
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)

    port = on_a_free_port(start_server)
    try:
        yield Server(f"http://127.0.0.1:{port}", stop, lambda: start_server(port))
    finally:
        stop()
