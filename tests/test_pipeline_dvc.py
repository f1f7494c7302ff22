"""End to end: the real DVC pipeline on a copy of the repo, with a tiny parameter set.

Copies the project into a temporary git repository, shrinks params.yaml (3 articles per
domain, a tiny model, a few training steps), and drives the commands a user runs:
dvc repro, a no-op second repro, a params change that reruns only train and eval,
dvc metrics diff, a queued sweep (exp run --queue -S, queue start, exp show, plots diff)
and a push to a local remote pulled into a fresh clone.
"""

import ast
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["src", "corpus", "evalsets", "calibration", "params.yaml", "dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore"]
STAGES = ("fetch", "generate", "split", "tokenizer", "train", "recite", "calibrate", "eval")  # the stages before report, in order


def run(cmd: list[str], cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def dvc(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def shrink_params(path: Path) -> None:
    """Tiny params, and a topic list (the file fetch.topics names) of 3 articles per domain."""
    params = yaml.safe_load(path.read_text())
    topics_file = path.parent / params["fetch"]["topics"]
    topics = yaml.safe_load(topics_file.read_text())["topics"]
    topics_file.write_text(yaml.safe_dump({"topics": {d: titles[:3] for d, titles in topics.items()}}, sort_keys=False))
    params["tokenizer"]["vocab_size"] = 400
    params["model"].update(max_seq_len=64, emb_dim=32, num_layers=1, num_heads=2)
    params["train"].update(max_steps=12, batch_size=8, eval_interval=6, eval_batches=2, warmup_steps=2, bf16=False)
    params["eval"]["max_new_tokens"] = 20
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("minillm")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, repo / name)
    shrink_params(repo / "params.yaml")
    run(["git", "init", "-q"], repo)
    run(["git", "config", "user.email", "test@example.org"], repo)
    run(["git", "config", "user.name", "Test"], repo)
    dvc("config", "core.analytics", "false", cwd=repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "the project as cloned"], repo)  # DVCLive logs to a commit
    out = dvc("repro", cwd=repo)
    for stage in (*STAGES, "report"):
        assert f"Running stage '{stage}'" in out
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline run"], repo)
    return repo


def test_repro_writes_every_output(project: Path):
    articles = [json.loads(line) for line in (project / "data/raw/articles.jsonl").read_text().splitlines()]
    assert len(articles) == 18 and {a["domain"] for a in articles} == {
        "astronomy",
        "anatomy",
        "animals",
        "geography",
        "chemistry",
        "weather",
    }
    for split in ("train", "val", "test"):
        assert (project / f"data/splits/{split}.jsonl").stat().st_size > 0
    assert (project / "models/tokenizer.json").is_file()
    assert (project / "models/model.pt").is_file()
    train_metrics = json.loads((project / "metrics/train.json").read_text())
    assert train_metrics["steps"] == 12
    eval_metrics = json.loads((project / "metrics/eval.json").read_text())
    for system in ("model", "closed_book_retrieval", "open_book_retrieval"):
        assert 0 <= eval_metrics[system]["rougeL_f1"] <= 1
    assert eval_metrics["model"]["perplexity"] > 1
    for section in ("natural", "out_of_scope"):
        assert set(eval_metrics[section]) >= {"model", "closed_book_retrieval", "open_book_retrieval"}
    outcome = eval_metrics["natural"]["model"]
    assert outcome["accuracy"] + outcome["wrong"] + outcome["declined"] == pytest.approx(1.0, abs=1e-3)
    assert eval_metrics["model"]["invented_sources"] == 0
    assert "per_domain" not in eval_metrics  # detail lives in metrics/eval_details.json, not in the metrics table
    assert (project / "plots/eval_per_domain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((project / "plots/train_loss.csv").read_text().splitlines()) == 3  # header + 2 evals
    # DVCLive's step-wise logs of the same run (tokens/s only in its curve, not in the summary)
    live = project / "plots/train"
    assert json.loads((live / "metrics.json").read_text()).keys() == {"step", "train_loss", "val_loss", "lr"}
    for name in ("train_loss", "val_loss", "lr", "tokens_per_s"):
        assert len((live / f"plots/metrics/{name}.tsv").read_text().splitlines()) == 3, name


def test_only_eval_reads_the_evaluation_sets():
    """The natural and out-of-scope questions must never reach the data or the training: the
    evaluation sets only eval reads, the validation questions (calibration/) only calibrate."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    readers = {"evalsets": "eval", "calibration": "calibrate"}
    for name, stage in stages.items():
        for folder, reader in readers.items():
            held_out = [d for d in stage.get("deps", []) if d.split("/")[0] == folder]
            assert bool(held_out) == (name == reader), (name, held_out)
    for path in (ROOT / "src").glob("*.py"):
        text = path.read_text()
        assert ("evalsets" in text) == (path.name == "evaluate.py"), path
        assert ("calibration/" in text) == (path.name == "calibrate.py"), path


def project_imports(module: str) -> set[str]:
    """The src/ files a module imports, directly or through other src modules (lazy imports too)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((ROOT / "src" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "src":
                todo.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("src."):
                todo.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                todo.extend(a.name.split(".")[1] for a in node.names if a.name.startswith("src."))
    return {f"src/{name}.py" for name in seen}


def test_each_stage_depends_on_exactly_the_code_it_runs():
    """A stage's code deps are its module (`python -m src.<module>`) and what that imports."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        module = stage["cmd"].split()[2]
        assert stage["cmd"].startswith("python -m src.") and module.startswith("src."), stage["cmd"]
        code_deps = {d for d in stage["deps"] if d.startswith("src/")}
        assert code_deps == project_imports(module.split(".")[1]), name


def test_second_repro_is_a_no_op(project: Path):
    out = dvc("repro", cwd=project)
    assert "Running stage" not in out
    assert "up to date" in dvc("status", cwd=project)


def test_params_change_reruns_only_train_and_what_follows(project: Path):
    params_file = project / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["train"]["lr"] = 1e-3
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = dvc("repro", cwd=project)
        ran = {stage for stage in STAGES if f"Running stage '{stage}'" in out}
        assert ran == {"train", "recite", "calibrate", "eval"}
        assert "metrics/eval.json" in dvc("metrics", "diff", cwd=project)
    finally:
        params_file.write_text(original)
        dvc("repro", cwd=project)  # back to the committed state (restored from the run cache)


def test_editing_one_stage_reruns_only_that_stage(project: Path):
    """A comment added to split's code reruns split; its outputs are unchanged, so nothing after it runs."""
    code = project / "src/split.py"
    original = code.read_text()
    code.write_text(original + "# an edit that changes nothing\n")
    try:
        out = dvc("repro", cwd=project)
        ran = {stage for stage in STAGES if f"Running stage '{stage}'" in out}
        assert ran == {"split"}
    finally:
        code.write_text(original)
        dvc("repro", cwd=project)


def exp_show_columns(project: Path, *flags: str) -> list[str]:
    """The header of `dvc exp show --csv`: one column per param, metric and dep DVC shows."""
    return dvc("exp", "show", "--csv", *flags, cwd=project).splitlines()[0].split(",")


def test_experiments_table_has_no_topic_or_detail_columns(project: Path):
    """The topic list is a file (one param naming it), per-domain scores are not metrics."""
    columns = exp_show_columns(project)
    assert "fetch.topics" in columns and "train.lr" in columns and "model.rougeL_f1" in columns
    keys = [c for c in columns if "/" not in c]  # params and metrics (the other columns are dep paths)
    assert not [c for c in keys if "astronomy" in c or "per_domain" in c or c.startswith("fetch.topics.")], keys
    assert not {"pairs", "kept", "passages"} & set(keys), keys  # generate's counts: data, not metrics
    # Every declared dep is a column, and the code deps must stay one per module
    # (test_each_stage_depends_on_exactly_the_code_it_runs): with every param and headline
    # metric that makes ~105 columns; --only-changed is the view that fits a terminal.


def wait_for_queue(project: Path) -> str:
    """`dvc queue status` once no queued experiment is still waiting or running."""
    for _ in range(120):
        status = dvc("queue", "status", cwd=project)
        if not any(word in status for word in ("Queued", "Running")):
            return status
        time.sleep(5)
    raise AssertionError(f"the queue did not finish:\n{status}")


def test_queued_sweep_runs_and_compares(project: Path):
    """The README's sweep: two queued -S sets, one worker, then the table and the plots."""
    dvc("exp", "run", "--queue", "-n", "lower-lr", "-S", "train.lr=0.0005", cwd=project)
    dvc("exp", "run", "--queue", "-n", "higher-lr", "-S", "train.lr=0.004", cwd=project)
    dvc("queue", "start", "-j", "1", cwd=project)
    status = wait_for_queue(project)
    assert status.count("Success") >= 2 and "Failed" not in status, status
    shown = json.dumps(json.loads(dvc("exp", "show", "--json", cwd=project)))
    assert "lower-lr" in shown and "higher-lr" in shown
    columns = exp_show_columns(project, "--only-changed")
    assert len(columns) <= 40, columns
    assert {"train.lr", "best_val_loss"} <= set(columns), columns
    table = dvc("exp", "show", "--csv", "--only-changed", cwd=project)
    assert "0.0005" in table and "0.004" in table
    out = dvc("plots", "diff", "lower-lr", "higher-lr", "-o", "dvc_plots", cwd=project)
    html = (project / "dvc_plots/index.html").read_text()
    assert "Loss" in html and "Learning rate" in html, out


def test_push_to_a_local_remote_then_pull_into_a_clone_trains_nothing(project: Path, tmp_path: Path):
    """The README's remote: push, clone, pull, and the clone's pipeline is up to date."""
    dvc("remote", "add", "-d", "local", str(tmp_path / "remote"), cwd=project)
    run(["git", "commit", "-q", "-am", "a local DVC remote"], project)
    dvc("push", cwd=project)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / "models/model.pt").exists()
    dvc("pull", cwd=clone)
    assert (clone / "models/model.pt").read_bytes() == (project / "models/model.pt").read_bytes()
    assert "up to date" in dvc("status", cwd=clone)
    assert "Running stage" not in dvc("repro", cwd=clone)


def test_train_in_a_repository_with_no_commit_is_a_one_line_error(project: Path, tmp_path: Path):
    """DVCLive needs a commit to log to; a fresh `git init` gets a one-line error, not a traceback."""
    run(["git", "init", "-q"], tmp_path)
    dvc("init", "-q", cwd=tmp_path)
    out = tmp_path / "out"
    inputs = {
        "--passages": "data/processed/passages.jsonl",
        "--train": "data/splits/train.jsonl",
        "--val": "data/splits/val.jsonl",
        "--tokenizer": "models/tokenizer.json",
        "--params": "params.yaml",
    }
    args = [arg for flag, path in inputs.items() for arg in (flag, str(project / path))]
    outputs = ["--checkpoint", str(out / "model.pt"), "--metrics", str(out / "train.json"), "--plot", str(out / "loss.csv")]
    result = subprocess.run(
        [sys.executable, "-m", "src.train", *args, *outputs], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "git commit" in lines[0], result.stderr
    assert not out.exists()
