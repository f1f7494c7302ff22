"""Training resumes (issue 11 part 5): the train stage, killed with SIGKILL at seeded random
instants and run again, ends with the same model.pt, metrics and plots, byte for byte, as a run
never killed, whether it runs alone or under `dvc repro` (which deletes a stage's outputs before
running it); a resume state of another run is thrown away, and none outlives a finished run."""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ENV, PROJECT_PATHS, REPO, lay_out_project, make_world, write_params

from src import train
from src.model import MiniTransformer, ModelConfig

RUN_ENV = {**ENV, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
TRAIN = [sys.executable, "-m", "src.train"]  # every path at its default: the project layout
DVC_REPRO = [sys.executable, "-m", "dvc", "repro"]
TINY = {"max_steps": 60, "eval_interval": 5}  # a resume state every 5 steps, a run of seconds


def tiny_project(root: Path) -> Path:
    """The tiny world at the default paths, with dropout on: a resumed run must also restore the
    random generator that draws its masks."""
    project = lay_out_project(make_world(root / "world"), root / "project")
    params = yaml.safe_load(write_params(project / "params.yaml", **TINY).read_text())
    params["model"]["dropout"] = 0.1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def outputs_of(project: Path) -> dict[str, bytes]:
    """The train stage's outputs, by path: model.pt, metrics, the loss curve and DVCLive's
    files but its tokens/s curve (a timing)."""
    files = [project / "models/model.pt", project / "metrics/train.json", project / "plots/train_loss.csv"]
    files += sorted(p for p in (project / "plots/train").rglob("*") if p.is_file() and p.name != "tokens_per_s.tsv")
    return {str(p.relative_to(project)): p.read_bytes() for p in files}


def leftovers(project: Path) -> list[str]:
    """Hidden files and folders in the output folders: a resume state, temp files, journals."""
    return sorted(
        str(p.relative_to(project)) for folder in ("models", "metrics", "plots") for p in (project / folder).rglob(".*")
    )


def start(cmd: list[str], project: Path) -> tuple[subprocess.Popen, float]:
    """Start cmd in its own process group; return it once train has printed its model line (the
    training loop comes next), and when that was."""
    proc = subprocess.Popen(
        cmd, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=RUN_ENV, start_new_session=True
    )
    for line in proc.stdout:
        if "parameters" in line:
            return proc, time.perf_counter()
    raise AssertionError(f"{cmd} ended before training: exit {proc.wait()}")


def kill_after(proc: subprocess.Popen, project: Path, delay: float) -> None:
    """Once the run has saved a resume state of its own, wait `delay` seconds, then SIGKILL the
    whole process group (dvc and the stage it runs), as kill -9 of a terminal's job does."""
    state, since = project / "models/.resume/train.pt", time.time()
    while not (state.exists() and state.stat().st_mtime >= since):
        assert proc.poll() is None, "it ended before saving a resume state"
        time.sleep(0.01)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


@pytest.fixture(scope="module")
def never_killed(tmp_path_factory) -> tuple[dict[str, bytes], float]:
    """The outputs of the tiny train stage run to the end, and the seconds between two of its
    resume states: each kill comes at a seeded instant within about that after the killed run
    saved one, so it lands anywhere in a step, an evaluation or a save, and never after the end."""
    project = tiny_project(tmp_path_factory.mktemp("never_killed"))
    proc, started = start(TRAIN, project)
    rest = proc.communicate()[0]
    assert proc.returncode == 0, rest
    return outputs_of(project), (time.perf_counter() - started) * TINY["eval_interval"] / TINY["max_steps"]


def test_a_run_killed_at_random_instants_ends_with_the_bytes_of_a_run_never_killed(never_killed, tmp_path):
    expected, interval = never_killed
    project = tiny_project(tmp_path)
    rng = random.Random(8)
    for _ in range(2):
        kill_after(start(TRAIN, project)[0], project, rng.uniform(0, interval))
    result = subprocess.run(TRAIN, cwd=project, capture_output=True, text=True, env=RUN_ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    resumed = re.search(r"train: resuming at step (\d+)", result.stdout)
    assert resumed and 0 < int(resumed[1]) <= TINY["max_steps"], result.stdout
    assert outputs_of(project) == expected
    assert leftovers(project) == []  # the resume state went when training finished


def test_dvc_repro_killed_inside_train_then_rerun_ends_with_the_bytes_of_a_run_never_killed(never_killed, tmp_path):
    """The issue's check: kill -9 of `dvc repro` during train, then `dvc repro`."""
    expected, interval = never_killed
    project = tiny_project(tmp_path)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in (".dvc/config", ".dvcignore", ".gitignore"):
        (project / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, project / name)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stages["train"]}}, sort_keys=False))
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the tiny project"]):  # DVCLive logs to a commit
        subprocess.run(git + cmd, cwd=project, check=True)

    kill_after(start(DVC_REPRO, project)[0], project, random.Random(9).uniform(0, interval))
    rerun = subprocess.run(DVC_REPRO, cwd=project, capture_output=True, text=True, env=RUN_ENV, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert re.search(r"train: resuming at step [1-9]", rerun.stdout), rerun.stdout
    assert outputs_of(project) == expected
    assert leftovers(project) == []


# ---------------------------------------------------------------- the resume state itself


def tiny_model(seed: int) -> tuple[MiniTransformer, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = MiniTransformer(ModelConfig(vocab_size=50, max_seq_len=16, emb_dim=16, num_layers=1, num_heads=2))
    return model, train.make_optimizer(model, {"weight_decay": 0.1, "lr": 1e-3})


def test_a_resume_state_restores_the_run_and_one_of_another_run_is_thrown_away(tmp_path):
    path = tmp_path / ".resume" / "train.pt"
    model, optimizer = tiny_model(0)
    progress = train.Progress(step=5, history=[{"step": 5, "train_loss": 3.0, "val_loss": 3.5}], speeds=[100.0])
    progress.best_val, progress.best_step, progress.best_weights = 3.5, 5, model.state_dict()
    train.save_resume_state(path, "key-a", model, optimizer, progress)

    other, other_optimizer = tiny_model(1)
    restored = train.resume(path, "key-a", other, other_optimizer)
    assert (restored.step, restored.history, restored.speeds, restored.best_step) == (5, progress.history, [100.0], 5)
    for weights in (other.state_dict(), restored.best_weights):
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), weights.values(), strict=True))
    assert other_optimizer.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]

    assert train.resume(path, "key-b", *tiny_model(1)) == train.Progress()  # params, inputs or code changed
    assert not path.parent.exists()
    path.parent.mkdir()
    path.write_bytes(b"not a resume state")
    assert train.resume(path, "key-a", *tiny_model(1)) == train.Progress()
    assert not path.parent.exists()


def test_the_run_key_changes_with_params_inputs_and_device_but_not_with_output_paths(tmp_path):
    project = tiny_project(tmp_path)
    paths = {name: project / PROJECT_PATHS[name] for name in ("passages", "train", "val", "tokenizer")}
    args = argparse.Namespace(**paths, checkpoint=project / "models/model.pt")
    params, config = train.read_params(str(project / "params.yaml"))
    key = train.run_key(args, params, config, "cpu")
    assert train.run_key(argparse.Namespace(**paths, checkpoint=tmp_path / "elsewhere.pt"), params, config, "cpu") == key
    assert train.run_key(args, {**params, "lr": params["lr"] / 2}, config, "cpu") != key
    assert train.run_key(args, params, config, "cuda") != key
    with paths["val"].open("a") as f:
        f.write("\n")
    assert train.run_key(args, params, config, "cpu") != key
