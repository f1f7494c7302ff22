"""The fetch stage: collect the articles everything else is made from.

    python src/data_pipeline.py fetch --output data/raw/articles.jsonl
    python -m src.fetch --output data/raw/articles.jsonl          # the same, as dvc.yaml runs it

Two sources behind one interface (params.yaml `fetch.source`): `snapshot` reads the
committed Markdown corpus (offline), `wikipedia` downloads the same topics (src/wikipedia.py),
`fetch.workers` pages at a time. Which topics: the file params.yaml `fetch.topics` names
(corpus/topics.yaml), domain -> titles, or domain -> a text file of titles, one a line.
Besides the articles it writes fetch_report.json next to them: what was skipped, and why.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from src import utils
from src.utils import DOMAINS, UserError

SKIPS_SHOWN = 10  # skipped topics listed on the terminal; the report lists them all


def parse_snapshot_article(path: Path, domain: str) -> dict[str, Any]:
    """Read one Markdown article of the offline corpus into an article record.

    Format: '# Title', an optional 'Aliases: a; b' line, a lead paragraph, then
    '## Heading' sections of plain text.
    """
    lines = utils.read_text(path).splitlines()
    if not lines or not lines[0].startswith("# "):
        raise UserError(f"{path}:1: expected '# Title' on the first line")
    title = lines[0][2:].strip()
    aliases: list[str] = []
    lead: list[str] = []
    sections: list[dict[str, str]] = []
    for line_no, line in enumerate(lines[1:], start=2):
        if line.startswith("## "):
            sections.append({"heading": line[3:].strip(), "text": ""})
        elif line.startswith("#"):
            raise UserError(f"{path}:{line_no}: only '# Title' and '## Section' headings are allowed")
        elif line.startswith("Aliases:") and not lead and not sections:
            aliases = [a.strip() for a in line[len("Aliases:") :].split(";") if a.strip()]
        elif line.strip():
            part = line.strip()
            if sections:
                sections[-1]["text"] = f"{sections[-1]['text']} {part}".strip()
            else:
                lead.append(part)
    if not lead or not sections:
        raise UserError(f"{path}: an article needs a lead paragraph and at least one '## ' section")
    return {
        "id": utils.article_id(domain, title),
        "title": title,
        "domain": domain,
        "url": f"snapshot:{path.as_posix()}",
        "aliases": aliases,
        "lead": " ".join(lead),
        "sections": sections,
    }


def topic_list(path: Path) -> list[tuple[str, str]]:
    """The (domain, title) pairs of the topics file (corpus/topics.yaml), checked: each names
    an article (letters or digits) that no other topic names.

    The list is data the stage depends on, not params: as params every title was a column
    of `dvc exp show`."""
    topics = utils.load_params("topics", path)
    pairs: list[tuple[str, str]] = []
    given_at: dict[str, str] = {}  # article name (slug) -> where a topic named it first
    for domain in topics:
        if domain not in DOMAINS:
            raise UserError(f"{topics.where}: unknown domain '{domain}' (expected one of {', '.join(DOMAINS)})")
        for title, where in domain_titles(topics, domain, path.parent):
            slug = utils.slugify(title)
            if not slug:
                raise UserError(f"{where}: '{title}' has no letters or digits")
            if slug in given_at:
                raise UserError(f"{where}: '{title}' names the same article as {given_at[slug]}")
            given_at[slug] = where
            pairs.append((domain, title))
    return pairs


def domain_titles(topics: utils.Params, domain: str, folder: Path) -> list[tuple[str, str]]:
    """A domain's titles, each with where it was given: a YAML list, or a .txt file (relative
    to the topics file) of one title a line, where blank lines and '#' comments don't count.

    A file is how a list grows to thousands of titles: `animals: animals.txt`."""
    titles = topics[domain]
    if isinstance(titles, list) and all(isinstance(t, str) for t in titles):
        return [(title, f"{topics.where}.{domain}[{i}]") for i, title in enumerate(titles)]
    if isinstance(titles, str) and titles.endswith(".txt"):
        file = folder / titles
        lines = enumerate(utils.read_text(file).splitlines(), start=1)
        return [(line.strip(), f"{file}:{n}") for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    raise UserError(f"{topics.where}.{domain}: must be a list of titles or a .txt file of titles, one a line")


def fetch_snapshot(topics: list[tuple[str, str]], snapshot_dir: Path, topics_file: Path) -> list[dict[str, Any]]:
    """Load the listed topics (from topics_file) from the committed corpus (no network)."""
    by_title: dict[tuple[str, str], dict[str, Any]] = {}
    for domain in {d for d, _ in topics}:
        for path in sorted((snapshot_dir / domain).glob("*.md")):
            article = parse_snapshot_article(path, domain)
            by_title[(domain, article["title"])] = article
    missing = [f"{d}/{t}" for d, t in topics if (d, t) not in by_title]
    if missing:
        raise UserError(f"{topics_file}: not in the snapshot {snapshot_dir}: {', '.join(missing)}")
    return [by_title[topic] for topic in topics]


FETCH_KEYS = [
    "source",
    "snapshot_dir",
    "topics",
    "base_url",
    "user_agent",
    "cache_dir",
    "timeout",
    "max_retries",
    "workers",
    "endpoint",
]


def fetch(output: Path, report: Path, params: utils.Params) -> None:
    """Articles and report, replaced as one set: new articles never sit beside an old report."""
    utils.recover_outputs(output, report)
    source = utils.require(params, "source", str)
    topics_file = Path(utils.require(params, "topics", str))
    if source == "snapshot":
        articles = fetch_snapshot(topic_list(topics_file), Path(utils.require(params, "snapshot_dir", str)), topics_file)
        skipped, how = [], ""
    elif source == "wikipedia":
        articles, skipped, how = fetch_wikipedia(topics_file, params)
    else:
        raise UserError(f"{params.where}.source: unknown source '{source}' (expected snapshot or wikipedia)")
    if not articles:
        why = f"all {len(skipped)} topics skipped, the first: {skipped[0]['title']}: {skipped[0]['reason']}"
        raise UserError(f"{topics_file}: no article to write ({why if skipped else 'no topics'})")
    with utils.atomic_outputs(output, report):
        utils.write_jsonl(output, articles)
        utils.write_json(report, {"source": source, "articles": len(articles), "skipped": skipped})
    print(f"fetch: {len(articles)} articles from {source}{how} -> {output}")
    for topic in skipped[:SKIPS_SHOWN]:
        print(f"  skipped {topic['domain']}/{topic['title']}: {topic['reason']}")
    if skipped:
        print(f"fetch: {len(skipped)} topics skipped, each with its reason in {report}")


def fetch_wikipedia(topics_file: Path, params: utils.Params) -> tuple[list[dict[str, Any]], list[dict[str, str]], str]:
    """The articles, the skipped topics and how the pages came (downloaded or cached).

    Its params are checked before the topics file is read, and before any request."""
    from src import wikipedia  # only this source needs requests and lxml

    settings = {
        "base_url": utils.require(params, "base_url", str),
        "cache_dir": Path(utils.require(params, "cache_dir", str)),
        "user_agent": utils.require(params, "user_agent", str),
        "timeout": utils.require(params, "timeout", float, above=0),
        "max_retries": utils.require(params, "max_retries", int, at_least=0),
        "endpoint": utils.require(params, "endpoint", str),
        "workers": utils.require(params, "workers", int, at_least=1, at_most=wikipedia.MAX_WORKERS),
    }
    topics = topic_list(topics_file)
    try:
        fetched = wikipedia.fetch_articles(topics, **settings, progress=True)
    except wikipedia.FetchError as err:
        raise UserError(str(err)) from None
    return fetched.articles, fetched.skipped, f" ({fetched.downloaded} pages downloaded, the rest from the cache)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="data/raw/articles.jsonl")
    parser.add_argument("--report", help="what was skipped and why (default: fetch_report.json next to --output)")
    parser.add_argument("--source", choices=["snapshot", "wikipedia"], help="overrides fetch.source")


def run(args: argparse.Namespace) -> None:
    params = utils.load_params("fetch", args.params, known=FETCH_KEYS)
    if args.source:
        params["source"] = args.source
    output = Path(args.output)
    fetch(output, Path(args.report) if args.report else output.with_name("fetch_report.json"), params)


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, run)
