"""The generate stage: cut every article into passages and ask questions about each.

    python src/data_pipeline.py generate --input data/raw/articles.jsonl --output data/processed/qa_pairs.jsonl
    python -m src.generate --input data/raw/articles.jsonl --output data/processed/qa_pairs.jsonl

A passage (2-4 consecutive sentences) is one fact: its text is the answer the model recites,
and its questions come from the rules in src/question_templates.py. Rule-based and seeded,
so the same articles and params give the same pairs.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from src import utils
from src.question_templates import (
    DOMAIN_KIND,
    Name,
    keyword_questions,
    looks_plural,
    names_no_subject,
    section_questions,
    sentence_questions,
    words_of,
)
from src.utils import read_articles, slugify

DANGLING_STARTS = {"it", "its", "it's", "this", "these", "those", "they", "their", "them", "he", "she", "his", "her", "such"}


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
    """What the subject is, from the lead's 'X is a ... Y that/of/in ...': 'The koala is a
    tree-dwelling, plant-eating marsupial native to ...' -> 'marsupial'; the domain's word
    when the lead has no such noun (an adjective, a superlative or a name is not a kind)."""
    match = re.search(
        r" (?:is|are) (?:a|an|the) ([^.;]*?) (?:that|which|of|in|native|found|with|located|formed|made|where|between)\b",
        article["lead"],
    )
    last = match.group(1).split()[-1] if match else ""
    is_noun = last.isalpha() and last.islower() and not last.endswith(("est", "ly", "ed"))
    return last if is_noun else DOMAIN_KIND[article["domain"]]


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
        runs.append(sentences[start[i] : i])
        i = start[i]
    return runs[::-1]


def passages_of(article: dict[str, Any], max_words: int) -> list[dict[str, Any]]:
    """An article as the passages the model recites, each with its source label:
    'Diet' for a section's first passage, 'Diet, part 2' for the next. An answer is always
    one whole passage, and train uses the same passages as the article text it learns."""
    found = []
    for heading, text in utils.article_parts(article):
        for n, run in enumerate(cut_passages(utils.split_sentences(text), max_words), start=1):
            label = heading if n == 1 else f"{heading}, part {n}"
            found.append(
                {
                    "id": f"{article['id']}#{slugify(label)}",
                    "domain": article["domain"],
                    "title": article["title"],
                    "heading": heading,
                    "section": label,
                    "sentences": run,
                    "text": " ".join(run),
                }
            )
    return found


def passage_questions(
    article: dict[str, Any], passage: dict[str, Any], names: list[Name], frequency: dict[str, int]
) -> list[str]:
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


def generate_pairs(
    articles: list[dict[str, Any]], max_words: int, per_fact: int, seed: int
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
            # one question per normalized form: the model reads "What is Dew?" and "What is dew?" alike
            by_form = {utils.normalize_question(q): q for q in passage_questions(article, passage, names, frequency)}
            forms = list(by_form)
            if not forms:
                summary["no_question"] += 1
                continue
            random.Random(f"{seed}:{passage['id']}").shuffle(forms)
            forms.sort(key=lambda form: not names_no_subject(by_form[form], names))  # look-ups by a fact first
            fresh = [form for form in forms if form not in seen]
            summary["duplicate_question"] += len(forms) - len(fresh)
            reason = standalone(passage) if fresh else "no_question"
            summary[reason] += 1
            if reason != "kept":
                continue
            for n, form in enumerate(fresh[:per_fact]):
                seen.add(form)
                pairs.append(
                    {
                        "id": f"{passage['id']}/{n}",
                        "fact_id": passage["id"],
                        "domain": article["domain"],
                        "title": article["title"],
                        "section": passage["section"],
                        "question": by_form[form],
                        "answer": passage["text"],
                    }
                )
    summary["pairs"], summary["passages"] = len(pairs), len(all_passages)
    return pairs, all_passages, summary


def generate(input_path: Path, output: Path, params: utils.Params) -> None:
    """Pairs, passages and summary, replaced as one set: new pairs never sit beside an old summary."""
    outputs = (output, output.with_name("passages.jsonl"), output.with_name("generate_summary.json"))
    utils.recover_outputs(*outputs)
    max_words = utils.require(params, "max_answer_words", int, at_least=1)
    per_fact = utils.require(params, "questions_per_fact", int, at_least=1)
    seed = utils.require(params, "seed", int)
    pairs, passages, summary = generate_pairs(read_articles(input_path), max_words, per_fact, seed)
    with utils.atomic_outputs(*outputs):
        utils.write_jsonl(outputs[0], pairs)
        utils.write_jsonl(outputs[1], passages)
        utils.write_json(outputs[2], dict(sorted(summary.items())))
    print(f"generate: {len(pairs)} pairs about {len(passages)} passages -> {output}; {dict(sorted(summary.items()))}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default="data/raw/articles.jsonl")
    parser.add_argument("--output", default="data/processed/qa_pairs.jsonl")
    parser.add_argument("--max-answer-words", type=int, help="overrides generate.max_answer_words")


def run(args: argparse.Namespace) -> None:
    params = utils.load_params("generate", args.params, known=["max_answer_words", "questions_per_fact", "seed"])
    if args.max_answer_words is not None:
        params["max_answer_words"] = args.max_answer_words
    generate(Path(args.input), Path(args.output), params)


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, run)
