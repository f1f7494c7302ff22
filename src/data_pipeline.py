"""The data stages: fetch articles, generate Q&A pairs from them, split the pairs.

    python src/data_pipeline.py fetch --output data/raw/articles.jsonl
    python src/data_pipeline.py generate --input data/raw/articles.jsonl --output data/processed/qa_pairs.jsonl
    python src/data_pipeline.py split --input data/processed/qa_pairs.jsonl --output-dir data/splits

Flags override params.yaml; params.yaml gives the defaults. No torch here: these stages start fast.
"""
from __future__ import annotations

import argparse
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from sklearn.model_selection import train_test_split

from src import utils
from src.question_templates import DOMAIN_KIND, Name, keyword_questions, looks_plural, section_questions, sentence_questions, words_of
from src.utils import DOMAINS, UserError, read_articles, slugify

DANGLING_STARTS = {"it", "its", "it's", "this", "these", "those", "they", "their", "them", "he", "she", "his", "her", "such"}


# ---------------------------------------------------------------- fetch

def parse_snapshot_article(path: Path, domain: str) -> dict[str, Any]:
    """Read one Markdown article of the offline corpus into an article record.

    Format: '# Title', an optional 'Aliases: a; b' line, a lead paragraph, then
    '## Heading' sections of plain text.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
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
            aliases = [a.strip() for a in line[len("Aliases:"):].split(";") if a.strip()]
        elif line.strip():
            part = line.strip()
            if sections:
                sections[-1]["text"] = f"{sections[-1]['text']} {part}".strip()
            else:
                lead.append(part)
    if not lead or not sections:
        raise UserError(f"{path}: an article needs a lead paragraph and at least one '## ' section")
    return {
        "id": f"{domain}/{slugify(title)}",
        "title": title,
        "domain": domain,
        "url": f"snapshot:{path.as_posix()}",
        "aliases": aliases,
        "lead": " ".join(lead),
        "sections": sections,
    }


def topic_list(params: utils.Params) -> list[tuple[str, str]]:
    """The (domain, title) pairs of params.yaml's fetch.topics, checked."""
    topics = utils.require(params, "topics", dict)
    pairs = []
    for domain, titles in topics.items():
        if domain not in DOMAINS:
            raise UserError(f"{params.where}.topics: unknown domain '{domain}' (expected one of {', '.join(DOMAINS)})")
        if not isinstance(titles, list) or not all(isinstance(t, str) for t in titles):
            raise UserError(f"{params.where}.topics.{domain} must be a list of titles")
        pairs.extend((domain, title) for title in titles)
    return pairs


def fetch_snapshot(topics: list[tuple[str, str]], snapshot_dir: Path, where: str) -> list[dict[str, Any]]:
    """Load the listed topics from the committed corpus (no network)."""
    by_title: dict[tuple[str, str], dict[str, Any]] = {}
    for domain in {d for d, _ in topics}:
        for path in sorted((snapshot_dir / domain).glob("*.md")):
            article = parse_snapshot_article(path, domain)
            by_title[(domain, article["title"])] = article
    missing = [f"{d}/{t}" for d, t in topics if (d, t) not in by_title]
    if missing:
        raise UserError(f"{where}.topics: not in the snapshot {snapshot_dir}: {', '.join(missing)}")
    return [by_title[topic] for topic in topics]


def fetch(output: Path, params: utils.Params) -> None:
    source = utils.require(params, "source", str)
    topics = topic_list(params)
    if source == "snapshot":
        articles = fetch_snapshot(topics, Path(utils.require(params, "snapshot_dir", str)), params.where)
    elif source == "wikipedia":
        from src import wikipedia  # only this source needs requests and lxml

        try:
            articles = wikipedia.fetch_articles(
                topics,
                base_url=utils.require(params, "base_url", str),
                cache_dir=Path(utils.require(params, "cache_dir", str)),
                user_agent=utils.require(params, "user_agent", str),
                timeout=utils.require(params, "timeout", float),
                max_retries=utils.require(params, "max_retries", int),
            )
        except wikipedia.FetchError as err:
            raise UserError(str(err)) from None
    else:
        raise UserError(f"{params.where}.source: unknown source '{source}' (expected snapshot or wikipedia)")
    utils.write_jsonl(output, articles)
    print(f"fetch: {len(articles)} articles from {source} -> {output}")


# ---------------------------------------------------------------- generate

def subject_of(article: dict[str, Any]) -> str:
    """How questions name the subject: from the lead's 'X is ...', else the bare title.

    'The heart is a muscular organ ...' -> 'the heart';  'Mercury (planet)' -> 'Mercury'
    """
    match = re.match(r"^(.{2,80}?) (?:is|are|was) ", article["lead"])
    subject = match.group(1).split(",")[0] if match else ""  # 'The red blood cell, or erythrocyte,'
    if subject and len(subject.split()) <= 6:
        first, _, rest = subject.partition(" ")
        return f"{first.lower()} {rest}" if first in ("The", "A", "An") and rest else subject
    return bare_title(article["title"])


def bare_title(title: str) -> str:
    """'Mercury (planet)' -> 'Mercury'."""
    return re.sub(r"\s*\(.*?\)", "", title)


def names_of(article: dict[str, Any]) -> list[Name]:
    """Every name a question may use for the subject: the lead's, the title, the aliases."""
    names, seen = [], set()
    title = bare_title(article["title"])
    if title.lower() in article["lead"]:  # a common noun ('hydrogen', 'heat wave'), not a name
        title = title.lower()
    for text in [subject_of(article), title, *article.get("aliases", [])]:
        if text.lower() not in seen:
            seen.add(text.lower())
            names.append(Name(text, looks_plural(text, article["title"])))
    return names


def kind_of(article: dict[str, Any]) -> str:
    """What the subject is, from the lead's 'X is a ... Y': 'The koala is a tree-dwelling,
    plant-eating marsupial native to ...' -> 'marsupial'; the domain's word if no match."""
    match = re.search(r" (?:is|are) (?:a|an|the) ([^.,;]*?)(?: that | which | of | in | native | found | with | located |[.,;])",
                      article["lead"])
    words = match.group(1).split() if match else []
    return words[-1] if words and words[-1].isalpha() else DOMAIN_KIND[article["domain"]]


def cut_passages(sentences: list[str], max_words: int) -> list[list[str]]:
    """Cut a part's sentences into the fewest runs of consecutive sentences, each of at most
    4 sentences and max_words words (a sentence longer than that stands alone), and among
    those cuts the most even one (the least sum of squared run lengths, in words)."""
    words = [len(s.split()) for s in sentences]
    n = len(sentences)

    def fits(a: int, b: int) -> bool:
        return b - a == 1 or (b - a <= 4 and sum(words[a:b]) <= max_words)

    # best[i] = (runs, sum of squares) of the best cut of sentences[:i]; start[i] = where its last run starts
    best: list[tuple[int, int]] = [(0, 0)] + [(n + 1, 0)] * n
    start = [0] * (n + 1)
    for i in range(1, n + 1):
        for a in range(i):
            if fits(a, i):
                candidate = (best[a][0] + 1, best[a][1] + sum(words[a:i]) ** 2)
                if candidate <= best[i]:  # on a tie the later start: earlier runs hold more
                    best[i], start[i] = candidate, a
    runs, i = [], n
    while i > 0:
        runs.append(sentences[start[i]:i])
        i = start[i]
    return runs[::-1]


def passages_of(article: dict[str, Any], max_words: int) -> list[dict[str, Any]]:
    """An article as the passages the model recites, each with its source label:
    'Diet' for a section's first passage, 'Diet, part 2' for the next. An answer is always
    one whole passage, and train uses the same passages as the article text it learns."""
    found = []
    parts = [("Lead", article["lead"])] + [(s["heading"], s["text"]) for s in article["sections"]]
    for heading, text in parts:
        for n, run in enumerate(cut_passages(utils.split_sentences(text), max_words), start=1):
            label = heading if n == 1 else f"{heading}, part {n}"
            found.append({"id": f"{article['id']}#{slugify(label)}", "domain": article["domain"], "title": article["title"],
                          "heading": heading, "section": label, "sentences": run, "text": " ".join(run)})
    return found


def passage_questions(article: dict[str, Any], passage: dict[str, Any], names: list[Name], frequency: dict[str, int]) -> list[str]:
    """All candidate questions whose answer is this passage: the questions its sentences
    answer, and then the section's phrasings (for a section's first passage) or look-ups of
    its rarest words (for a later passage, which no section phrasing leads to)."""
    kind = kind_of(article)
    questions = [q for sentence in passage["sentences"] for q in sentence_questions(sentence, names, article["domain"], kind)]
    if passage["section"] == passage["heading"]:
        return questions + section_questions(article["domain"], passage["heading"], names)
    return questions + keyword_questions(passage["text"], names, frequency)


def standalone(passage: dict[str, Any]) -> str:
    """'kept', or why a passage can't be an answer on its own."""
    if len(passage["sentences"]) < 2 and passage["section"] == passage["heading"]:
        return "too_few_sentences"
    first_word = re.sub(r"[^a-z']", "", passage["sentences"][0].split()[0].lower())
    return "dangling_pronoun" if first_word in DANGLING_STARTS else "kept"


def generate_pairs(articles: list[dict[str, Any]], max_words: int, per_fact: int, seed: int
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counter]:
    """Passages, and Q&A pairs about them: each passage is one fact, asked up to `per_fact`
    ways (a seeded sample of its candidate questions); all share its fact_id."""
    pairs, all_passages, summary, seen = [], [], Counter(), set()
    by_article = [(article, passages_of(article, max_words)) for article in articles]
    frequency = Counter(w for _, found in by_article for p in found for w in words_of(p["text"]))
    for article, found in by_article:
        names = names_of(article)
        for passage in found:
            all_passages.append({k: passage[k] for k in ("id", "domain", "title", "section", "text")})
            questions = list(dict.fromkeys(passage_questions(article, passage, names, frequency)))
            if not questions:
                summary["no_question"] += 1
                continue
            random.Random(f"{seed}:{passage['id']}").shuffle(questions)
            fresh = [q for q in questions if q.lower() not in seen]
            summary["duplicate_question"] += len(questions) - len(fresh)
            reason = standalone(passage) if fresh else "no_question"
            summary[reason] += 1
            if reason != "kept":
                continue
            kept = fresh[:per_fact]
            for n, question in enumerate(kept):
                seen.add(question.lower())
                pairs.append({
                    "id": f"{passage['id']}/{n}", "fact_id": passage["id"], "domain": article["domain"],
                    "title": article["title"], "section": passage["section"], "question": question, "answer": passage["text"],
                })
    summary["pairs"], summary["passages"] = len(pairs), len(all_passages)
    return pairs, all_passages, summary


def generate(input_path: Path, output: Path, params: utils.Params) -> None:
    max_words = utils.require(params, "max_answer_words", int)
    per_fact = utils.require(params, "questions_per_fact", int)
    seed = utils.require(params, "seed", int)
    pairs, passages, summary = generate_pairs(read_articles(input_path), max_words, per_fact, seed)
    utils.write_jsonl(output, pairs)
    utils.write_jsonl(output.with_name("passages.jsonl"), passages)
    summary_path = output.with_name("generate_summary.json")
    utils.write_json(summary_path, dict(sorted(summary.items())))
    print(f"generate: {len(pairs)} pairs about {len(passages)} passages -> {output}; {dict(sorted(summary.items()))}")


# ---------------------------------------------------------------- split

def check_sizes(sizes: dict[str, float]) -> None:
    for name, size in sizes.items():
        if not isinstance(size, (int, float)) or not 0 < size < 1:
            raise UserError(f"split: {name} must be a number between 0 and 1, got {size!r}")
    if abs(sum(sizes.values()) - 1.0) > 1e-6:
        raise UserError(f"split: train_size + val_size + test_size must be 1, got {sum(sizes.values()):.4g}")


def split_pairs(pairs: list[dict[str, Any]], sizes: dict[str, float], seed: int) -> dict[str, list[dict[str, Any]]]:
    """Split by fact (so no paraphrase leaks across splits), stratified by domain."""
    fact_domain = {p["fact_id"]: p["domain"] for p in pairs}
    facts = sorted(fact_domain)
    domains = [fact_domain[f] for f in facts]
    train_facts, rest, _, rest_domains = train_test_split(
        facts, domains, train_size=sizes["train_size"], stratify=domains, random_state=seed
    )
    val_share = sizes["val_size"] / (sizes["val_size"] + sizes["test_size"])
    val_facts, test_facts = train_test_split(rest, train_size=val_share, stratify=rest_domains, random_state=seed)
    split_of = {f: "train" for f in train_facts} | {f: "val" for f in val_facts} | {f: "test" for f in test_facts}
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for pair in pairs:
        splits[split_of[pair["fact_id"]]].append(pair)
    return splits


def split(input_path: Path, output_dir: Path, sizes: dict[str, float], seed: int) -> None:
    check_sizes(sizes)
    pairs = utils.read_pairs(input_path)
    try:
        splits = split_pairs(pairs, sizes, seed)
    except ValueError as err:  # e.g. too few facts per domain to stratify
        raise UserError(f"{input_path}: cannot split: {err}") from None
    for name, records in splits.items():
        utils.write_jsonl(output_dir / f"{name}.jsonl", records)
    print("split: " + ", ".join(f"{name} {len(r)}" for name, r in splits.items()) + f" -> {output_dir}")


# ---------------------------------------------------------------- command line

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("fetch", help="collect articles (offline snapshot or Wikipedia)")
    p.add_argument("--output", default="data/raw/articles.jsonl")
    p.add_argument("--source", choices=["snapshot", "wikipedia"], help="overrides fetch.source")

    p = commands.add_parser("generate", help="turn articles into question/answer pairs")
    p.add_argument("--input", default="data/raw/articles.jsonl")
    p.add_argument("--output", default="data/processed/qa_pairs.jsonl")
    p.add_argument("--max-answer-words", type=int, help="overrides generate.max_answer_words")

    p = commands.add_parser("split", help="split pairs into train/val/test by fact")
    p.add_argument("--input", default="data/processed/qa_pairs.jsonl")
    p.add_argument("--output-dir", default="data/splits")
    for name in ("train", "val", "test"):
        p.add_argument(f"--{name}-size", type=float, help=f"overrides split.{name}_size")
    p.add_argument("--seed", type=int, help="overrides split.seed")

    args = parser.parse_args()
    params = utils.load_params(args.command, args.params)
    if args.command == "fetch":
        if args.source:
            params["source"] = args.source
        fetch(Path(args.output), params)
    elif args.command == "generate":
        if args.max_answer_words is not None:
            params["max_answer_words"] = args.max_answer_words
        generate(Path(args.input), Path(args.output), params)
    else:
        sizes = {}
        for name in ("train", "val", "test"):
            flag = getattr(args, f"{name}_size")
            sizes[f"{name}_size"] = flag if flag is not None else utils.require(params, f"{name}_size", float)
        seed = args.seed if args.seed is not None else utils.require(params, "seed", int)
        split(Path(args.input), Path(args.output_dir), sizes, seed)


if __name__ == "__main__":
    utils.run_cli(main)
