"""Fetching many articles politely: topic lists grown from text files, a few requests at once
whose results come out in topic order whatever order they finish in, one Retry-After that
pauses every worker, a progress bar on a terminal, and a report of what was skipped and why.

Everything runs against the local server of tests/wiki_server.py (never the internet); the
command-line tests run `python -m src.fetch` as a user does."""

import fcntl
import json
import os
import pty
import random
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import yaml
from conftest import ENV, REPO
from wiki_server import PAGES, UA, Reply, page, rest_path, serve

from src import fetch, wikipedia
from src.utils import UserError


@pytest.fixture
def wiki():
    with serve() as fake:
        yield fake


def write_topics(folder: Path, topics: dict, files: dict[str, str] | None = None) -> Path:
    """A topics file (the format of corpus/topics.yaml) and the title files it names."""
    for name, text in (files or {}).items():
        (folder / name).write_text(text, encoding="utf-8")
    path = folder / "topics.yaml"
    path.write_text(yaml.safe_dump({"topics": topics}, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- topic lists


def test_a_domain_can_name_a_file_of_titles(tmp_path):
    titles = "# big cats\nTiger\n\n  Snow leopard  \n# birds\nBarn owl\n"
    path = write_topics(tmp_path, {"astronomy": ["Sun", "Moon"], "animals": "animals.txt"}, {"animals.txt": titles})
    assert fetch.topic_list(path) == [
        ("astronomy", "Sun"),
        ("astronomy", "Moon"),
        ("animals", "Tiger"),
        ("animals", "Snow leopard"),
        ("animals", "Barn owl"),
    ]


@pytest.mark.parametrize(
    ("topics", "files", "message"),
    [
        ({"animals": "animals.txt"}, {"animals.txt": "Tiger\n\n???\n"}, "animals.txt:3: '???' has no letters or digits"),
        (
            {"astronomy": ["Mars"], "geography": "geo.txt"},
            {"geo.txt": "Nile\nmars\n"},
            "geo.txt:2: 'mars' names the same article as {tmp}/topics.yaml: topics.astronomy[0]",
        ),
        ({"animals": ["Tiger", "Lion", "tiger"]}, {}, "topics.animals[2]: 'tiger' names the same article as"),
        ({"animals": "animals.csv"}, {}, "topics.animals: must be a list of titles or a .txt file of titles"),
        ({"animals": "missing.txt"}, {}, "{tmp}/missing.txt: file not found"),
        ({"animals": "bad.txt"}, {"bad.txt": "Tiger\nCaf\udce9\n"}, "{tmp}/bad.txt:2: not UTF-8 text"),
    ],
    ids=["no-letters", "same-across-domains", "same-in-a-list", "not-txt", "missing", "not-utf8"],
)
def test_bad_topic_lists_name_the_line(tmp_path, topics, files, message):
    files = {name: text.encode("utf-8", "surrogateescape") for name, text in files.items()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(UserError, match=re.escape(message.format(tmp=tmp_path))):
        fetch.topic_list(write_topics(tmp_path, topics))


# ---------------------------------------------------------------- workers


def many_pages(wiki, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """`count` small pages whose answers take 0-40 ms, so workers finish out of order."""
    rng = random.Random(seed)
    topics = []
    for i in range(count):
        title = f"Star {i}"
        wiki.add(title, Reply(body=page(f"Star {i} is a star."), delay=rng.uniform(0, 0.04)))
        topics.append(("astronomy", title))
    return topics


def test_workers_give_the_same_articles_in_topic_order(wiki, tmp_path):
    topics = many_pages(wiki, 30)
    one = wikipedia.fetch_articles(topics, wiki.base_url, tmp_path / "one", UA, workers=1)
    assert wiki.most_in_flight == 1
    three = wikipedia.fetch_articles(topics, wiki.base_url, tmp_path / "three", UA, workers=3)
    assert wiki.most_in_flight == 3  # really three at once, and never more
    assert three == one
    assert [a["title"] for a in three.articles] == [title for _, title in topics]
    assert (one.downloaded, three.downloaded) == (30, 30)


def test_more_workers_than_wikimedia_allows_are_refused(tmp_path):
    with pytest.raises(wikipedia.FetchError, match="workers must be 1 to 3, got 4"):
        wikipedia.fetch_articles([("astronomy", "Sun")], "http://127.0.0.1:9", tmp_path, UA, workers=4)


def test_retry_after_pauses_every_worker(wiki, tmp_path):
    """One worker is told 'Retry-After: 1'; the other, free 0.3 s later, waits too."""
    wiki.add("Mars", Reply(429, headers={"Retry-After": "1"}), Reply(body=page("Mars is red.")))
    wiki.add("Venus", Reply(body=page("Venus is hot."), delay=0.3))
    wiki.add("Earth", Reply(body=page("Earth is home.")))
    topics = [("astronomy", "Mars"), ("astronomy", "Venus"), ("astronomy", "Earth")]
    result = wikipedia.fetch_articles(topics, wiki.base_url, tmp_path, UA, workers=2)
    assert [a["lead"] for a in result.articles] == ["Mars is red.", "Venus is hot.", "Earth is home."]
    (told, again), earth = ([at for path, at in wiki.arrived if path == rest_path(t)] for t in ("Mars", "Earth"))
    assert again - told >= 0.95 and earth[0] - told >= 0.95


# ---------------------------------------------------------------- the command


def fetch_params(folder: Path, base_url: str, topics: Path, workers: int) -> Path:
    """params.yaml's fetch section, pointed at the local server and a cache in `folder`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["fetch"]
    params.update(source="wikipedia", base_url=base_url, topics=str(topics), workers=workers, cache_dir=str(folder / "cache"))
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump({"fetch": params}, sort_keys=False), encoding="utf-8")
    return path


def run_fetch(params: Path, output: Path, **popen) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "src.fetch", "--params", str(params), "--output", str(output)]
    env = {**ENV, "NO_PROXY": "127.0.0.1"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=not popen, text=True, timeout=120, **popen)


def read_all(controller: int) -> str:
    """What a program wrote to a terminal that is now closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return b"".join(chunks).decode()


@pytest.fixture
def realistic(wiki, tmp_path) -> tuple[Path, dict[str, Path]]:
    """The realistic pages, one missing title and one title that redirects to a page already
    listed, in title files; params for 1 and for 3 workers, each with a cache of its own."""
    wiki.add_fixtures()
    wiki.add("Thigh bone", Reply(307, headers={"Location": rest_path("Femur")}))
    by_domain: dict[str, list[str]] = {}
    for domain, title, _ in PAGES.values():
        by_domain.setdefault(domain, []).append(title)
    by_domain["anatomy"].append("Thigh bone")
    by_domain["weather"].insert(1, "Nosuchweather")
    files = {f"{domain}.txt": "\n".join(titles) + "\n" for domain, titles in by_domain.items()}
    topics = write_topics(tmp_path, {domain: f"{domain}.txt" for domain in by_domain}, files)
    params = {}
    for workers in (1, 3):
        (tmp_path / f"w{workers}").mkdir()
        params[workers] = fetch_params(tmp_path / f"w{workers}", wiki.base_url, topics, workers)
    return tmp_path, params


def test_command_writes_the_same_bytes_whatever_the_workers_and_reports_skips(wiki, realistic):
    tmp, params = realistic
    results = {workers: run_fetch(path, tmp / f"w{workers}" / "articles.jsonl") for workers, path in params.items()}
    for result in results.values():
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # no progress bar when stderr is not a terminal
    assert (tmp / "w1" / "articles.jsonl").read_bytes() == (tmp / "w3" / "articles.jsonl").read_bytes()
    articles = [json.loads(line) for line in (tmp / "w3" / "articles.jsonl").read_text().splitlines()]
    assert [a["title"] for a in articles] == [title for _, title, _ in PAGES.values()]
    report = json.loads((tmp / "w3" / "fetch_report.json").read_text())
    assert (tmp / "w1" / "fetch_report.json").read_text() == (tmp / "w3" / "fetch_report.json").read_text()
    assert report == {
        "source": "wikipedia",
        "articles": 12,
        "skipped": [
            {"domain": "anatomy", "title": "Thigh bone", "reason": "the same page as 'Femur'"},
            {
                "domain": "weather",
                "title": "Nosuchweather",
                "reason": f"HTTP 404 (no such article) from {wiki.base_url}{rest_path('Nosuchweather')}",
            },
        ],
    }
    out = results[3].stdout.splitlines()
    counts = "12 articles from wikipedia (13 pages downloaded, the rest from the cache)"
    assert out[0] == f"fetch: {counts} -> {tmp}/w3/articles.jsonl"
    assert out[1:] == [
        "  skipped anatomy/Thigh bone: the same page as 'Femur'",
        f"  skipped weather/Nosuchweather: HTTP 404 (no such article) from {wiki.base_url}{rest_path('Nosuchweather')}",
        f"fetch: 2 topics skipped, each with its reason in {tmp}/w3/fetch_report.json",
    ]


def test_command_resumes_from_its_cache_and_shows_progress_on_a_terminal(wiki, realistic):
    tmp, params = realistic
    output = tmp / "w3" / "articles.jsonl"
    assert run_fetch(params[3], output).returncode == 0
    first = output.read_bytes()
    asked = len(wiki.seen)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 80 columns, as a terminal has
    try:
        result = run_fetch(params[3], output, stdout=subprocess.PIPE, stderr=terminal)
    finally:
        os.close(terminal)
    shown = read_all(controller)
    assert result.returncode == 0
    assert "(0 pages downloaded, the rest from the cache)" in result.stdout
    assert output.read_bytes() == first
    assert len(wiki.seen) - asked == 1  # only the missing page is asked for again
    assert "fetch: 100%" in shown and "14/14" in shown


def test_command_that_fetches_nothing_is_a_one_line_error_and_writes_nothing(wiki, tmp_path):
    topics = write_topics(tmp_path, {"weather": ["Nosuchweather"]})
    (tmp_path / "out").mkdir()
    result = run_fetch(fetch_params(tmp_path, wiki.base_url, topics, 1), tmp_path / "out" / "articles.jsonl")
    reason = f"HTTP 404 (no such article) from {wiki.base_url}{rest_path('Nosuchweather')}"
    assert result.returncode == 1
    assert result.stderr == f"error: {topics}: no article to write (all 1 topics skipped, the first: Nosuchweather: {reason})\n"
    assert list((tmp_path / "out").iterdir()) == []
