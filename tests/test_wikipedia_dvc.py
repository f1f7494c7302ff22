"""End to end with live-style Wikipedia: the real DVC pipeline, fetch.source=wikipedia, pointed
at the local server (tests/wiki_server.py) that serves the realistic pages, two per domain.

Copies the project into a temporary git repository as tests/test_pipeline_dvc.py does, lists
the pages in title files (one per domain, plus a title that does not exist), and runs
`dvc repro`: fetch -> generate -> split -> tokenizer -> a tiny train -> eval -> report. The
server runs on a thread of this process; dvc's stages reach it over 127.0.0.1."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_pipeline_dvc import PROJECT_FILES, ROOT, shrink_params
from wiki_server import PAGES, rest_path, serve

STAGES = ("fetch", "generate", "split", "tokenizer", "train", "eval", "report")
ENV = {**os.environ, "NO_PROXY": "127.0.0.1", "OMP_NUM_THREADS": "1"}


def run(*cmd: str, cwd: Path) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def dvc(*args: str, cwd: Path) -> str:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def use_wikipedia(repo: Path, base_url: str) -> None:
    """Tiny params, fetch from the local server, and the fixture titles in per-domain .txt files."""
    shrink_params(repo / "params.yaml")
    titles: dict[str, list[str]] = {}
    for domain, title, _ in PAGES.values():
        titles.setdefault(domain, []).append(title)
    titles["weather"].append("Nosuchweather")  # a 404: skipped and reported
    (repo / "corpus/wikipedia").mkdir()
    for domain, names in titles.items():
        (repo / f"corpus/wikipedia/{domain}.txt").write_text("# fixture pages\n" + "\n".join(names) + "\n")
    topics = {"topics": {domain: f"{domain}.txt" for domain in titles}}
    (repo / "corpus/wikipedia/topics.yaml").write_text(yaml.safe_dump(topics, sort_keys=False))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["fetch"].update(source="wikipedia", base_url=base_url, topics="corpus/wikipedia/topics.yaml", workers=2)
    params["split"].update(train_size=0.7, val_size=0.15, test_size=0.15)  # a few dozen facts: enough in each split
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """(repo, server, output of `dvc repro`) once the whole pipeline ran on Wikipedia pages."""
    repo = tmp_path_factory.mktemp("minillm-wikipedia")
    for name in PROJECT_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / name, repo / name)
    with serve() as wiki:
        wiki.add_fixtures()
        use_wikipedia(repo, wiki.base_url)
        run("git", "init", "-q", cwd=repo)
        dvc("config", "core.analytics", "false", cwd=repo)
        run("git", "add", "-A", cwd=repo)
        identity = ["-c", "user.email=test@example.org", "-c", "user.name=Test"]
        run("git", *identity, "commit", "-q", "-m", "the project, fetching from Wikipedia", cwd=repo)  # DVCLive logs to a commit
        yield repo, wiki, dvc("repro", cwd=repo)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_stage_runs_on_wikipedia_pages(project):
    repo, wiki, out = project
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out
    articles = read_jsonl(repo / "data/raw/articles.jsonl")
    assert [(a["domain"], a["title"]) for a in articles] == [(domain, title) for domain, title, _ in PAGES.values()]
    assert all(a["url"] == f"{wiki.base_url}/wiki/{a['title'].replace(' ', '_')}" for a in articles)
    report = json.loads((repo / "data/raw/fetch_report.json").read_text())
    assert report["articles"] == 12 and [s["title"] for s in report["skipped"]] == ["Nosuchweather"]
    pairs = read_jsonl(repo / "data/processed/qa_pairs.jsonl")
    assert {p["title"] for p in pairs} == {a["title"] for a in articles}  # every page is asked about
    for split in ("train", "val", "test"):
        assert {p["domain"] for p in read_jsonl(repo / f"data/splits/{split}.jsonl")} == {a["domain"] for a in articles}
    assert json.loads((repo / "metrics/train.json").read_text())["steps"] == 12
    assert 0 <= json.loads((repo / "metrics/eval.json").read_text())["model"]["rougeL_f1"] <= 1
    assert (repo / "reports/index.html").is_file()


def test_fetching_again_resumes_from_the_cache_and_changes_nothing(project):
    """The same pages give the same bytes: DVC sees nothing changed, and only the missing page is asked for."""
    repo, wiki, _ = project
    wiki.seen.clear()
    out = dvc("repro", "--force", "--single-item", "fetch", cwd=repo)
    assert "12 articles from wikipedia (0 pages downloaded, the rest from the cache)" in out
    assert [path for path, _ in wiki.seen] == [rest_path("Nosuchweather")]
    assert "up to date" in dvc("status", cwd=repo)
