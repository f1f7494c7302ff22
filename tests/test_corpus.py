"""The corpus quality check: every corpus/<domain>/*.md article must meet the corpus spec.

The generate stage turns each article into question/answer pairs, so a corpus article that
breaks the spec silently becomes bad training data (a dropped fact, an unknown heading, a
"What is ...?" question about the wrong subject, a near-copy that leaks between splits).
These checks keep the offline snapshot clean. Each failure message lists every offending
file, not just the first, so one run shows all that needs fixing.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.feature_extraction.text import TfidfVectorizer

from src import fetch, generate, utils
from src.question_templates import TEMPLATES

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"

MIN_ARTICLES_PER_DOMAIN = 30
MIN_ARTICLES_TOTAL = 180
MIN_WORDS, MAX_WORDS = 300, 900
MIN_LEAD_SENTENCES, MAX_LEAD_SENTENCES = 3, 5
MIN_SECTIONS = 3
MAX_PARAGRAPH_SIMILARITY = 0.8
# A section's first sentence must name its subject: the generate stage drops a fact whose
# answer starts with a word that points back to something the question never mentioned.
DANGLING = {"it", "its", "this", "these", "those", "they", "their", "he", "she", "his", "her", "such"}
DANGLING |= set(generate.DANGLING_STARTS)

# Leftovers of HTML, wikitext or Markdown that plain-text articles must not contain.
MARKUP = {
    "'<' or '>' (HTML tag)": re.compile(r"[<>]"),
    "square brackets (citation like [1], or a Markdown link)": re.compile(r"[\[\]]"),
    "curly braces (template)": re.compile(r"[{}]"),
    "'**' (bold)": re.compile(r"\*\*"),
    "'__' (bold)": re.compile(r"__"),
    "backtick (code)": re.compile(r"`"),
    "'http' or 'www.' (URL)": re.compile(r"http|www\.", re.IGNORECASE),
    "HTML entity": re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);"),
    "list, table or quote line": re.compile(r"^\s*(?:[-*+|>]|\d+\.(?:\s|$))"),
}


# ---------------------------------------------------------------- loading


def domain_files(domain: str) -> list[Path]:
    return sorted((CORPUS / domain).glob("*.md"))


@cache
def parsed(domain: str) -> tuple[list[tuple[Path, dict[str, Any]]], list[str]]:
    """(path, article) for every file of a domain that parses, and the parse errors."""
    articles, errors = [], []
    for path in domain_files(domain):
        try:
            articles.append((path, fetch.parse_snapshot_article(path, domain)))
        except (utils.UserError, UnicodeDecodeError) as err:
            errors.append(f"{rel(path)}: {err}")
    return articles, errors


def all_articles() -> list[tuple[Path, dict[str, Any]]]:
    return [item for domain in utils.DOMAINS for item in parsed(domain)[0]]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def words(article: dict[str, Any]) -> int:
    """Words of the lead and the section texts (headings excluded)."""
    return sum(len(text.split()) for text in [article["lead"]] + [s["text"] for s in article["sections"]])


def paragraphs(path: Path) -> list[str]:
    """The file's paragraphs (blank-line separated blocks; headings left out)."""
    blocks = re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
    result = []
    for block in blocks:
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith(("#", "Aliases:"))]
        if lines:
            result.append(" ".join(lines))
    return result


def report(problems: list[str], what: str) -> str:
    return f"{len(problems)} {what}:\n  " + "\n  ".join(problems)


by_domain = pytest.mark.parametrize("domain", utils.DOMAINS)


# ---------------------------------------------------------------- size


@by_domain
def test_domain_has_enough_articles(domain):
    count = len(domain_files(domain))
    assert count >= MIN_ARTICLES_PER_DOMAIN, f"corpus/{domain} has {count} articles, needs {MIN_ARTICLES_PER_DOMAIN}+"


def test_corpus_has_enough_articles():
    counts = {domain: len(domain_files(domain)) for domain in utils.DOMAINS}
    assert sum(counts.values()) >= MIN_ARTICLES_TOTAL, (
        f"{sum(counts.values())} articles in all ({counts}), needs {MIN_ARTICLES_TOTAL}+"
    )


def test_no_stray_domain_folders():
    folders = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
    stray = [f for f in folders if f not in utils.DOMAINS]
    assert not stray, f"corpus folders that are not domains (utils.DOMAINS): {stray}"


# ---------------------------------------------------------------- format


@by_domain
def test_files_are_clean_utf8(domain):
    problems = []
    for path in domain_files(domain):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(f"{rel(path)}: not valid UTF-8 ({err.reason} at byte {err.start})")
            continue
        if text.startswith("\ufeff"):
            problems.append(f"{rel(path)}: starts with a byte order mark")
        for line_no, line in enumerate(text.split("\n"), start=1):
            bad = sorted({repr(c) for c in line if (ord(c) < 32 and c != "\t") or c == "\x7f" or c in "\u200b\u00ad"})
            if bad or "\t" in line:
                problems.append(f"{rel(path)}:{line_no}: control or invisible characters {bad or ['tab']}")
    assert not problems, report(problems, "encoding problems")


@by_domain
def test_articles_parse(domain):
    _, errors = parsed(domain)
    assert not errors, report(errors, "files that do not parse")


@by_domain
def test_no_leftover_markup(domain):
    problems = []
    for path in domain_files(domain):
        for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            for what, pattern in MARKUP.items():
                if pattern.search(line):
                    problems.append(f"{rel(path)}:{line_no}: {what}: {line.strip()[:80]!r}")
    assert not problems, report(problems, "markup leftovers")


@by_domain
def test_file_name_is_slug_of_title(domain):
    problems = []
    for path, article in parsed(domain)[0]:
        expected = utils.slugify(article["title"]) + ".md"
        if path.name != expected:
            problems.append(f"{rel(path)}: title {article['title']!r} means the file should be named {expected}")
    assert not problems, report(problems, "misnamed files")


def test_titles_are_unique():
    files_of: dict[str, list[str]] = {}
    for path, article in all_articles():
        files_of.setdefault(article["title"].casefold(), []).append(rel(path))
    duplicates = [f"{title!r}: {', '.join(files)}" for title, files in files_of.items() if len(files) > 1]
    assert not duplicates, report(duplicates, "titles used by more than one article")


def test_every_article_has_aliases_that_name_only_it():
    """Aliases ('koalas', 'the Red Planet') let questions use the names people use; an alias
    shared with another article would send a question to the wrong one."""
    owner: dict[str, str] = {}
    problems = []
    for path, article in all_articles():
        if not article["aliases"]:
            problems.append(f"{rel(path)}: no 'Aliases:' line")
        for name in [article["title"], *article["aliases"]]:
            key = name.casefold()
            if key in owner and owner[key] != rel(path):
                problems.append(f"{rel(path)}: {name!r} also names {owner[key]}")
            owner.setdefault(key, rel(path))
    assert not problems, report(problems, "alias problems")


# ---------------------------------------------------------------- content


@by_domain
def test_article_length(domain):
    problems = []
    for path, article in parsed(domain)[0]:
        count = words(article)
        if not MIN_WORDS <= count <= MAX_WORDS:
            problems.append(f"{rel(path)}: {count} words (needs {MIN_WORDS}-{MAX_WORDS})")
    assert not problems, report(problems, "articles of the wrong length")


@by_domain
def test_lead(domain):
    problems = []
    for path, article in parsed(domain)[0]:
        lead = article["lead"]
        count = len(utils.split_sentences(lead))
        if not MIN_LEAD_SENTENCES <= count <= MAX_LEAD_SENTENCES:
            problems.append(f"{rel(path)}: lead has {count} sentences (needs {MIN_LEAD_SENTENCES}-{MAX_LEAD_SENTENCES})")
        # 'The heart is ...', 'Red blood cells are ...': a subject of at most 7 words, then is/are.
        if not re.match(r"^(?:\S+ ){1,7}(?:is|are) ", lead):
            problems.append(f"{rel(path)}: lead does not start with '<subject> is/are' within 8 words: {lead[:60]!r}")
    assert not problems, report(problems, "bad leads")


@by_domain
def test_sections(domain):
    vocabulary = set(TEMPLATES[domain])
    problems = []
    for path, article in parsed(domain)[0]:
        headings = [s["heading"] for s in article["sections"]]
        if len(headings) < MIN_SECTIONS:
            problems.append(f"{rel(path)}: {len(headings)} sections (needs {MIN_SECTIONS}+)")
        unknown = [h for h in headings if h not in vocabulary]
        if unknown:
            problems.append(f"{rel(path)}: headings not in the {domain} vocabulary {sorted(vocabulary)}: {unknown}")
        repeated = sorted({h for h in headings if headings.count(h) > 1})
        if repeated:
            problems.append(f"{rel(path)}: headings used twice: {repeated}")
        empty = [s["heading"] for s in article["sections"] if not s["text"].strip()]
        if empty:
            problems.append(f"{rel(path)}: empty sections: {empty}")
    assert not problems, report(problems, "section problems")


@by_domain
def test_sections_do_not_start_with_a_dangling_pronoun(domain):
    problems = []
    for path, article in parsed(domain)[0]:
        for section in article["sections"]:
            sentences = utils.split_sentences(section["text"])
            if not sentences:
                continue
            first_word = re.sub(r"[^a-z']", "", sentences[0].split()[0].lower())
            if first_word in DANGLING:
                problems.append(f"{rel(path)}: section {section['heading']!r} starts with {sentences[0][:50]!r}")
    assert not problems, report(problems, "sections whose first sentence starts with a dangling pronoun")


@by_domain
def test_topic_list_and_snapshot_agree(domain):
    topics = topic_lists().get(domain)
    assert topics, f"corpus/topics.yaml: topics has no '{domain}' list"
    repeated = sorted({t for t in topics if topics.count(t) > 1})
    titles = {article["title"]: path for path, article in parsed(domain)[0]}
    not_in_corpus = [t for t in topics if t not in titles]
    not_in_params = [rel(titles[t]) + f" ({t!r})" for t in sorted(titles) if t not in topics]
    problems = [f"listed twice in corpus/topics.yaml topics.{domain}: {t!r}" for t in repeated]
    problems += [
        f"corpus/topics.yaml topics.{domain} lists {t!r}, but no corpus/{domain} article has that title" for t in not_in_corpus
    ]
    problems += [f"{f} is not listed in corpus/topics.yaml topics.{domain}" for f in not_in_params]
    assert not problems, report(problems, "mismatches between the topic list and the snapshot")


def topic_lists() -> dict[str, list[str]]:
    """The topic list the fetch stage reads (params.yaml fetch.topics names the file)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return yaml.safe_load((ROOT / params["fetch"]["topics"]).read_text(encoding="utf-8"))["topics"]


def test_topic_list_has_only_corpus_domains():
    assert sorted(topic_lists()) == sorted(utils.DOMAINS)


def test_no_near_duplicate_paragraphs_across_articles():
    owners, texts = [], []
    for domain in utils.DOMAINS:
        for path in domain_files(domain):
            for paragraph in paragraphs(path):
                owners.append(rel(path))
                texts.append(paragraph)
    assert len(set(owners)) >= 2, "need paragraphs from at least two articles"
    matrix = TfidfVectorizer().fit_transform(texts)  # rows are L2-normalised: dot product = cosine
    similarity = (matrix @ matrix.T).toarray()
    article_of = np.unique(owners, return_inverse=True)[1]
    same_article = article_of[:, None] == article_of[None, :]
    similarity[same_article] = 0.0
    similarity = np.triu(similarity, k=1)  # each pair once
    i, j = np.unravel_index(np.argmax(similarity), similarity.shape)
    worst = (float(similarity[i, j]), int(i), int(j))
    offending = [(float(similarity[a, b]), int(a), int(b)) for a, b in np.argwhere(similarity >= MAX_PARAGRAPH_SIMILARITY)]
    score, i, j = worst
    worst_pair = f"worst pair (cosine {score:.3f}):\n  {owners[i]}: {texts[i][:120]!r}\n  {owners[j]}: {texts[j][:120]!r}"
    offending.sort(reverse=True)
    lines = [f"{s:.3f}  {owners[a]}  ~  {owners[b]}" for s, a, b in offending]
    assert not offending, report(lines, f"paragraph pairs with TF-IDF cosine >= {MAX_PARAGRAPH_SIMILARITY}") + "\n" + worst_pair
