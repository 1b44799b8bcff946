"""deploy/: the Kubernetes manifests and Slurm scripts parse, and every `prunesearch` command
they run exists with the options they give it (parsed by the CLI itself). The image is not
built here: its base image is on Docker Hub, which this machine cannot reach."""

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from prunesearch.cli import main

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SCRIPTS = sorted((DEPLOY / "slurm").glob("*.sh"))


def manifests() -> dict[str, dict]:
    """Every object of deploy/kubernetes/*.yaml by kind/name."""
    found = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


def containers(job: dict) -> list[dict]:
    spec = job["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def prunesearch_commands() -> list[list[str]]:
    """The argument lists every manifest and script gives `prunesearch`, variables filled."""
    commands = [container["args"] for kind, thing in manifests().items()
                if kind.startswith("Job/") for container in containers(thing)
                if container["image"].startswith("REGISTRY/prunesearch")]
    for script in SCRIPTS:
        text = script.read_text().replace("\\\n", " ")
        for line in re.findall(r"^exec prunesearch (.*)$", text, flags=re.MULTILINE):
            commands.append(shlex.split(line.replace('"$', '"VALUE-')))
    return commands


def test_the_manifests_hold_the_objects_a_cluster_needs():
    found = manifests()
    assert {"Deployment/mlflow", "Service/mlflow", "Job/prunesearch-prepare",
            "Job/prunesearch-workers", "PersistentVolumeClaim/prunesearch-shared"} <= set(found)
    workers = found["Job/prunesearch-workers"]
    assert workers["spec"]["parallelism"] > 1 and "completions" not in workers["spec"]
    assert workers["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    wait, = workers["spec"]["template"]["spec"]["initContainers"]
    assert "job/prunesearch-prepare" in wait["args"]
    for job in ("Job/prunesearch-prepare", "Job/prunesearch-workers"):
        env = {e["name"]: e for c in containers(found[job]) for e in c.get("env", [])}
        assert env["PRUNESEARCH_STORAGE"]["valueFrom"]["secretKeyRef"]["name"] == "prunesearch-db"
    text = "".join(path.read_text() for path in (DEPLOY / "kubernetes").glob("*.yaml"))
    assert "postgresql://" not in text  # database URLs only ever come from the Secret
    assert "nvidia.com/gpu" in text


def test_the_slurm_scripts_parse_and_chain_as_the_docs_say():
    for script in SCRIPTS:
        subprocess.run(["bash", "-n", str(script)], check=True)
    workers = (DEPLOY / "slurm" / "workers.sh").read_text()
    assert re.search(r"#SBATCH --array=1-\d+%\d+", workers) and "--gres=gpu:1" in workers
    assert "--dependency=afterok:" in (DEPLOY / "slurm" / "prepare.sh").read_text()


def test_the_recipes_run_prepare_then_optimize_workers():
    """What the parametrized test below checks is there at all (an empty list would pass it)."""
    commands = [args[0] for args in prunesearch_commands()]
    assert commands.count("prepare") == 2 and commands.count("optimize") == 2, commands


@pytest.mark.parametrize("args", prunesearch_commands(), ids=lambda args: args[0])
def test_every_prunesearch_command_they_run_exists_with_its_options(args):
    command = main.commands[args[0]]
    command.make_context(args[0], list(args[1:]))  # raises on an unknown option or value


def test_the_image_installs_extras_that_exist_and_reads_settings_the_cli_reads():
    dockerfile = (DEPLOY / "kubernetes" / "Dockerfile").read_text()
    extras = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    named = re.search(r"'\.\[([a-z,]+)\]'", dockerfile).group(1).split(",")
    assert named and set(named) <= set(extras)
    envvars = {param.envvar for command in main.commands.values() for param in command.params}
    assert set(re.findall(r"(PRUNESEARCH_[A-Z_]+)=", dockerfile)) <= envvars
