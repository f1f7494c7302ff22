"""Outputs replaced as one set (issue 11 part 4): utils.atomic_outputs, and the generate and eval
stages that use it, killed with SIGKILL at seeded random instants. After what the next run does
first (utils.recover_outputs), the outputs are all the old files or all the new ones, never a
mix, and no temp file or journal is left; new files follow the umask."""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import ENV, REPO, lay_out_project, make_world

from src import evaluate, train, utils
from src.model import MiniTransformer, ModelConfig
from src.tokenizer import Tokenizer

RUN_ENV = {**ENV, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}  # this checkout's src/, from any folder

# Writes the set named on its command line again and again, each time every file holding the next number.
WRITER = """
import sys
from src import utils
paths = sys.argv[1:]
utils.recover_outputs(*paths)
version = int(open(paths[0]).read())
print("writing", flush=True)
while True:
    version += 1
    with utils.atomic_outputs(*paths):
        for path in paths:
            utils.write_text(path, str(version))
"""


def hidden_files(*folders: Path) -> list[Path]:
    """Temp files and journals: what a set write leaves only while it runs."""
    return [p for folder in folders for p in folder.rglob(".*")]


def kill_when(cmd: list[str], cwd: Path, ready: Callable[[], bool], delay: float) -> None:
    """Start cmd; once ready() holds (checked every millisecond), wait `delay` seconds, then
    SIGKILL it (if it is still running)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=RUN_ENV)
    while proc.poll() is None and not ready():
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def read_set(paths: list[Path]) -> dict[str, bytes | None]:
    return {str(p): p.read_bytes() if p.exists() else None for p in paths}


def test_a_set_killed_at_random_instants_is_whole_after_recovery(tmp_path):
    """A writer that replaces twelve files in two folders as one set, over and over, killed at
    40 seeded instants: each time, after recovery every file holds the same number, and the
    number only grows. Some kills land between the renames (a journal is left): recovery
    finishes them."""
    folders = [tmp_path / "metrics", tmp_path / "plots"]
    paths = [folder / f"out{i}.txt" for folder in folders for i in range(6)]
    for path in paths:
        utils.write_text(path, "0")
    rng, last, journals = random.Random(4), 0, 0
    for _ in range(40):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, *map(str, paths)], stdout=subprocess.PIPE, text=True, env=RUN_ENV)
        assert proc.stdout.readline() == "writing\n"
        time.sleep(rng.uniform(0.0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        journals += utils.journal_of(tuple(paths)).exists()
        utils.recover_outputs(*paths)
        versions = {int(p.read_text()) for p in paths}
        assert len(versions) == 1, versions
        assert versions.pop() >= last
        last = int(paths[0].read_text())
        assert hidden_files(*folders) == []
    assert last >= 10  # the writer got through sets between the kills
    assert journals > 0  # and some kills came between the renames, which recovery finished


def test_recovery_finishes_the_renames_a_journal_lists(tmp_path):
    """What a kill between two renames leaves (the journal, one file renamed, one still under its
    temp name) is completed to the new set, whichever output comes first."""
    paths = [tmp_path / "a" / "one.json", tmp_path / "b" / "two.json"]
    for path in paths:
        utils.write_text(path, "old")
    with utils.atomic_outputs(*paths):
        for path in paths:
            utils.write_text(path, "new")
    assert read_set(paths) == {str(p): b"new" for p in paths}
    (tmp_path / "b" / ".two.json.x1.tmp").write_text("newer")  # written before the journal
    (tmp_path / "a" / "one.json").write_text("newer")  # renamed already
    renames = [["../b/.two.json.x1.tmp", "../b/two.json"], [".one.json.gone.tmp", "one.json"]]  # relative to a/
    utils.write_text(utils.journal_of(tuple(paths)), json.dumps(renames))
    utils.recover_outputs(*paths)
    assert read_set(paths) == {str(p): b"newer" for p in paths}
    assert hidden_files(tmp_path) == []


def test_a_set_whose_block_fails_leaves_the_old_files_and_no_temp(tmp_path):
    paths = [tmp_path / "x.jsonl", tmp_path / "sub" / "y.json"]
    for path in paths:
        utils.write_text(path, "old")
    with pytest.raises(RuntimeError, match="half-way"), utils.atomic_outputs(*paths):
        utils.write_text(paths[0], "new")
        raise RuntimeError("crash half-way")
    assert read_set(paths) == {str(p): b"old" for p in paths}
    assert hidden_files(tmp_path) == []


def test_a_set_write_must_write_what_it_declares(tmp_path):
    paths = [tmp_path / "x.jsonl", tmp_path / "y.json"]
    with pytest.raises(RuntimeError, match="not the set declared"), utils.atomic_outputs(*paths):
        utils.write_text(paths[0], "new")
    assert not any(p.exists() for p in paths) and hidden_files(tmp_path) == []


def test_outputs_follow_the_umask(tmp_path):
    code = "import sys; from src import utils\nwith utils.atomic_outputs(*sys.argv[1:]):\n"
    code += "    [utils.write_json(p, {}) for p in sys.argv[1:]]"
    paths = [tmp_path / "a.json", tmp_path / "b" / "c.json"]
    for umask, mode in ((0o027, 0o640), (0o002, 0o664)):
        subprocess.run(
            [sys.executable, "-c", code, *map(str, paths)],
            check=True,
            env=RUN_ENV,
            preexec_fn=lambda umask=umask: os.umask(umask),
        )
        assert [p.stat().st_mode & 0o777 for p in paths] == [mode, mode]


# ---------------------------------------------------------------- the stages


def assert_killed_runs_leave_old_or_new(cmd: list[str], project: Path, outputs: list[Path], kills: int, seed: int) -> None:
    """Run cmd to the end (the new set, and how long a run takes), then, `kills` times: put back
    an old set (each file saying "old"), start cmd and SIGKILL it at a seeded instant, recover
    as its next run would, and check that the outputs are the old set or the new one, with no
    temp file left. Every other kill comes in the second half of a run (the first is mostly
    imports), the others within 20 ms of the first temp file of the set appearing."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=project, check=True, capture_output=True, env=RUN_ENV)
    duration = time.perf_counter() - start
    new, old = read_set(outputs), {str(p): b"old" for p in outputs}
    folders = sorted({p.parent for p in outputs})
    rng = random.Random(seed)
    for kill in range(kills):
        for path in outputs:
            path.write_bytes(b"old")
        if kill % 2:
            kill_when(cmd, project, lambda: bool(hidden_files(*folders)), rng.uniform(0, 0.02))
        else:
            kill_when(cmd, project, lambda: True, rng.uniform(0.5, 1.1) * duration)
        utils.recover_outputs(*outputs)
        found = read_set(outputs)
        assert found in (old, new), {path: (data or b"")[:40] for path, data in found.items()}
        assert hidden_files(*folders) == []


def test_generate_killed_at_random_instants_leaves_its_old_or_its_new_outputs(tmp_path):
    project = lay_out_project(make_world(tmp_path / "world"), tmp_path / "project")
    processed = project / "data" / "processed"
    outputs = [processed / name for name in ("qa_pairs.jsonl", "passages.jsonl", "generate_summary.json")]
    cmd = [sys.executable, "-m", "src.generate"]
    assert_killed_runs_leave_old_or_new(cmd, project, outputs, kills=6, seed=3)


def write_untrained_checkpoint(project: Path) -> None:
    """models/model.pt as train writes it (its own save_checkpoint), of an untrained tiny model:
    eval answers badly, but writes every output, which is what is tested."""
    tokenizer = Tokenizer.load(project / "models" / "tokenizer.json")
    config = ModelConfig(vocab_size=tokenizer.vocab_size, max_seq_len=64, emb_dim=32, num_layers=1, num_heads=2)
    passages = utils.read_passages(project / "data" / "processed" / "passages.jsonl")
    args = argparse.Namespace(checkpoint=project / "models" / "model.pt")
    train.save_checkpoint(MiniTransformer(config), config, tokenizer.dumps(), args, step=1, val_loss=1.0, passages=passages)


def test_eval_killed_at_random_instants_leaves_its_old_or_its_new_outputs(tmp_path):
    project = lay_out_project(make_world(tmp_path / "world"), tmp_path / "project")
    write_untrained_checkpoint(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["eval"]["max_new_tokens"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([sys.executable, "-m", "src.calibrate"], cwd=project, check=True, capture_output=True, env=ENV)
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    outputs = [project / path for path in evaluate.output_paths(parser.parse_args([]))]  # at the default paths
    cmd = [sys.executable, "-m", "src.evaluate"]
    assert_killed_runs_leave_old_or_new(cmd, project, outputs, kills=2, seed=5)
