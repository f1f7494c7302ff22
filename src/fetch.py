"""The fetch stage: collect the articles everything else is made from.

    python src/data_pipeline.py fetch --output data/raw/articles.jsonl
    python -m src.fetch --output data/raw/articles.jsonl          # the same, as dvc.yaml runs it

Two sources behind one interface (params.yaml `fetch.source`): `snapshot` reads the
committed Markdown corpus (offline), `wikipedia` downloads the same topics (src/wikipedia.py).
Which topics: the file params.yaml `fetch.topics` names (corpus/topics.yaml), domain -> titles.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from src import utils
from src.utils import DOMAINS, UserError


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
    """The (domain, title) pairs of the topics file (corpus/topics.yaml), checked.

    The list is data the stage depends on, not params: as params every title was a column
    of `dvc exp show`."""
    topics = utils.load_params("topics", path)
    pairs = []
    for domain, titles in topics.items():
        if domain not in DOMAINS:
            raise UserError(f"{topics.where}: unknown domain '{domain}' (expected one of {', '.join(DOMAINS)})")
        if not isinstance(titles, list) or not all(isinstance(t, str) for t in titles):
            raise UserError(f"{topics.where}.{domain}: must be a list of titles")
        pairs.extend((domain, title) for title in titles)
    return pairs


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


def fetch(output: Path, params: utils.Params) -> None:
    source = utils.require(params, "source", str)
    topics_file = Path(utils.require(params, "topics", str))
    topics = topic_list(topics_file)
    if source == "snapshot":
        articles = fetch_snapshot(topics, Path(utils.require(params, "snapshot_dir", str)), topics_file)
    elif source == "wikipedia":
        from src import wikipedia  # only this source needs requests and lxml

        try:
            articles = wikipedia.fetch_articles(
                topics,
                base_url=utils.require(params, "base_url", str),
                cache_dir=Path(utils.require(params, "cache_dir", str)),
                user_agent=utils.require(params, "user_agent", str),
                timeout=utils.require(params, "timeout", float, above=0),
                max_retries=utils.require(params, "max_retries", int, at_least=0),
                endpoint=utils.require(params, "endpoint", str),
            )
        except wikipedia.FetchError as err:
            raise UserError(str(err)) from None
    else:
        raise UserError(f"{params.where}.source: unknown source '{source}' (expected snapshot or wikipedia)")
    utils.write_jsonl(output, articles)
    print(f"fetch: {len(articles)} articles from {source} -> {output}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="data/raw/articles.jsonl")
    parser.add_argument("--source", choices=["snapshot", "wikipedia"], help="overrides fetch.source")


def run(args: argparse.Namespace) -> None:
    params = utils.load_params("fetch", args.params)
    if args.source:
        params["source"] = args.source
    fetch(Path(args.output), params)


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, run)
