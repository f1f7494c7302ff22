"""Training in two processes (issue 12 part 5): `torchrun --nproc_per_node=2 -m src.train` on the
tiny world, each process learning from half of every batch, follows the loss curve of one
process on the same global batches, and only rank 0 writes; train.processes: 2 in params.yaml
starts it from the stage's own command, `python -m src.train`."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ENV, REPO, lay_out_project, make_world, write_params

from src import train, utils

TINY = {"max_steps": 30, "eval_interval": 10}
TRAIN = [sys.executable, "-m", "src.train"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *TRAIN[1:]]
OUTPUTS = ["models/model.pt", "metrics/train.json", "plots/train_loss.csv"]

# Loaded first by every Python process of the run (through PYTHONPATH): each file of the project
# that is opened to write, renamed into place, removed or made goes to writes.log with the RANK
# of the process that did it.
WATCH_WRITES = """
import os, sys
PROJECT, LOG = {project!r}, os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
PATH_ARGUMENT = {{"open": 0, "os.rename": 1, "os.remove": 0, "os.mkdir": 0}}

def writes(event, args):
    if event != "open":
        return event in PATH_ARGUMENT
    mode, flags = args[1] or "", args[2] or 0
    return bool(set(mode) & set("wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))

def hook(event, args):
    if writes(event, args) and isinstance(path := args[PATH_ARGUMENT[event]], (str, os.PathLike)):
        if (path := os.path.abspath(path)).startswith(PROJECT):
            os.write(LOG, f"{{os.environ.get('RANK', '-')}} {{event}} {{path}}\\n".encode())

sys.addaudithook(hook)
"""


def run(cmd: list[str], project: Path, pythonpath: str = str(REPO)) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120, env={**ENV, "PYTHONPATH": pythonpath})
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def loss_curve(project: Path) -> list[dict[str, float]]:
    with (project / "plots/train_loss.csv").open() as f:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return make_world(tmp_path_factory.mktemp("world"))


def tiny_project(world: dict[str, Path], root: Path, **train_overrides) -> Path:
    project = lay_out_project(world, root)
    write_params(project / "params.yaml", **TINY, **train_overrides)
    return project


@pytest.fixture(scope="module")
def one_process(world, tmp_path_factory) -> Path:
    project = tiny_project(world, tmp_path_factory.mktemp("one"))
    run(TRAIN, project)
    return project


@pytest.fixture(scope="module")
def two_processes(world, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, list[str]]:
    """The tiny project trained by torchrun in two processes, with the writes of each process."""
    project = tiny_project(world, tmp_path_factory.mktemp("two"))
    hook_dir = tmp_path_factory.mktemp("hook")
    log = hook_dir / "writes.log"
    (hook_dir / "sitecustomize.py").write_text(WATCH_WRITES.format(project=str(project), log=str(log)))
    result = run(TORCHRUN, project, pythonpath=f"{hook_dir}:{REPO}")
    return project, result, log.read_text().splitlines()


def test_two_processes_follow_the_loss_curve_of_one_on_the_same_global_batches(one_process, two_processes):
    project, result, _ = two_processes
    assert "torch.distributed: 2 processes, gloo" in result.stdout
    one, two = loss_curve(one_process), loss_curve(project)
    assert [row["step"] for row in two] == [10, 20, 30]
    for alone, together in zip(one, two, strict=True):
        assert together == pytest.approx(alone, rel=1e-4)
    assert one[-1]["train_loss"] < one[0]["train_loss"] - 1  # it learned: a curve worth comparing
    # DVCLive's step-wise curves come from the one process that logs: a row per evaluation
    assert (project / "plots/train/plots/metrics/val_loss.tsv").read_text().count("\n") == 1 + len(two)


def test_only_rank_0_writes_and_says_each_line_once(two_processes):
    project, result, writes = two_processes
    assert {line.split()[0] for line in writes} == {"0"}, writes
    for output in OUTPUTS:
        assert f"0 os.rename {project / output}" in writes
    assert result.stdout.count("parameters") == 1 and result.stdout.count(" steps in ") == 1
    assert not (project / "models/.resume").exists()  # rank 0 removed its resume state at the end


def test_train_processes_in_params_runs_torchrun_from_the_stage_command(world, tmp_path):
    """What `dvc exp run -S train.processes=2` runs: `python -m src.train`, with its arguments,
    again under torchrun."""
    project = tiny_project(world, tmp_path)  # params.yaml: one process, 30 steps
    write_params(project / "two.yaml", max_steps=10, eval_interval=5, processes=2)
    result = run([*TRAIN, "--params", "two.yaml"], project)
    assert "torch.distributed: 2 processes, gloo" in result.stdout
    assert [row["step"] for row in loss_curve(project)] == [5, 10]  # two.yaml's run, as --params said


def test_a_batch_that_does_not_split_evenly_over_the_processes_is_an_error_before_any_work(world, tmp_path, monkeypatch):
    project = tiny_project(world, tmp_path, processes=3)  # batch_size 8
    message = r"params.yaml: train: key 'batch_size' \(8\) must divide by the number of processes \(3\): each takes"
    with pytest.raises(utils.UserError, match=message):
        train.read_params(str(project / "params.yaml"))
    monkeypatch.setenv("WORLD_SIZE", "3")  # started by torchrun: its count is the one that matters
    with pytest.raises(utils.UserError, match=message):
        train.read_params(str(tiny_project(world, tmp_path / "by_hand") / "params.yaml"))  # processes: 1
