"""The eval stage: how well does the model answer, and does it know when it doesn't know?

    python -m src.evaluate

Fluent text is not a right answer, and a model that always answers is wrong on every
question its articles can't answer; so the stage scores the answers, checks that they
recite the articles, and counts how often the model declines. It asks the two retrieval
baselines of baselines.py the same questions: they show what a system gets by looking up
instead of learning (closed book: the training answers; open book: the articles themselves).

Three question sets:
  - test: the template questions of the test split (facts whose Q&A pairs training never
    saw), scored against the reference answer (ROUGE-L, token F1, exact match);
  - natural (evalsets/natural/): questions written by hand the way people type them, each
    right if the answer matches its pattern; the model may decline instead;
  - out_of_scope (evalsets/out_of_scope.jsonl): questions the articles can't answer; the
    right behaviour is to decline.
The model declines when its confidence, the probability that its answer is right
(calibrated on validation questions: src/calibrate.py), is below eval.min_confidence;
plots/decline_tradeoff.csv shows what each threshold would give, on the validation questions
(where the threshold is chosen, models/calibration.json) and on the evaluation sets. Writes
metrics/eval.json (headline numbers), metrics/eval_details.json (per domain),
metrics/{test,natural}_answers.jsonl and plots/.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import matplotlib

matplotlib.use("Agg")  # render to files, no window
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from src import baselines, utils
from src.calibrate import (
    declined_share,
    given_answers,
    made_for,
    outcomes,
    read_calibration,
    read_natural,
    read_questions,
)
from src.model import MiniTransformer
from src.qa import Calibration, Reply, SourceTrie, answer, answer_settings, load_model
from src.qa_format import END, source_header, to_batch
from src.recite import recitations_beside
from src.tokenizer import Tokenizer

SYSTEMS = ("model", "closed_book_retrieval", "open_book_retrieval")
FAITHFUL_ROUGE = 0.8

T = TypeVar("T")


# ---------------------------------------------------------------- scores


def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation or articles (SQuAD-style)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return [w for w in text.split() if w not in ("a", "an", "the")]


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the normalized words the prediction and the reference have in common."""
    pred, ref = normalize(prediction), normalize(reference)
    return overlap_f1(sum((Counter(pred) & Counter(ref)).values()), len(pred), len(ref))


def overlap_f1(overlap: int, candidate_length: int, reference_length: int) -> float:
    """The harmonic mean of precision (overlap / candidate) and recall (overlap / reference)."""
    if overlap == 0:
        return 0.0
    precision, recall = overlap / candidate_length, overlap / reference_length
    return 2 * precision * recall / (precision + recall)


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1 (Lin 2004): the longest common subsequence of the two texts' words, as a
    share of each (recall, precision), combined by their harmonic mean. Words as the
    rouge-score package makes them (lower case, runs of letters and digits); a test checks
    the scores are that package's, which is not imported here as it loads in 3 s."""
    ref, cand = rouge_words(reference), rouge_words(candidate)
    return overlap_f1(lcs_length_fast(ref, cand), len(cand), len(ref))


def rouge_words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming one row at a time.

    >>> lcs_length("the cat sat on the mat".split(), "the cat on a mat".split())
    4
    """
    row = [0] * (len(b) + 1)  # row[j]: LCS of the words of a so far and b[:j]
    for x in a:
        diagonal = 0  # the previous row's row[j - 1]
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(above, row[j - 1])
            diagonal = above
    return row[-1]


def lcs_length_fast(a: list[str], b: list[str]) -> int:
    """lcs_length, the same number 20-50x faster, with one row of the table in the bits of
    an integer (bit-parallel LCS, Allison & Dix 1986; Hyyro 2004). Bit j of `v` is 1 where
    the row does not step up at b[j]; a row is made from the one before in a few integer
    operations instead of a loop over b. A test checks it against lcs_length.

    >>> lcs_length_fast("the cat sat on the mat".split(), "the cat on a mat".split())
    4
    """
    where: dict[str, int] = {}  # for each word, the bits of the positions where b has it
    for j, y in enumerate(b):
        where[y] = where.get(y, 0) | 1 << j
    everywhere = (1 << len(b)) - 1
    v = everywhere
    for x in a:
        u = v & where.get(x, 0)
        v = ((v + u) | (v - u)) & everywhere
    return len(b) - v.bit_count()


def score(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-L F1, token F1 and exact match over paired answers."""
    pairs = list(zip(predictions, references, strict=True))
    n = len(pairs)
    return {
        "rougeL_f1": round(sum(rouge_l(r, p) for p, r in pairs) / n, 4),
        "token_f1": round(sum(token_f1(p, r) for p, r in pairs) / n, 4),
        "exact_match": round(sum(normalize(p) == normalize(r) for p, r in pairs) / n, 4),
    }


def share(flags: list[bool]) -> float:
    """The share of true flags, rounded as every share in the outputs is."""
    return round(sum(flags) / len(flags), 4)


def right_sources(replies: list[Reply], pairs: list[dict[str, Any]]) -> list[bool]:
    """For each reply to a template question: does it name the source its reference answer comes from?"""
    return [r.source == source_header(p["title"], p["section"]) for r, p in zip(replies, pairs, strict=True)]


def sentence_count(text: str) -> int:
    """Complete sentences only: a recitation cut off by max_new_tokens does not count its last part."""
    return len([s for s in utils.split_sentences(text) if re.search(r"[.!?]$", s)])


def faithful_share(answers: list[str], article_sentences: list[str]) -> float:
    """Share of answer sentences that closely match some article sentence (ROUGE-L F1 >=
    0.8 against the best of the 5 TF-IDF-nearest): recitation, not invented text."""
    sentences = [s for a in answers for s in utils.split_sentences(a)]
    if not sentences:
        return 1.0
    nearest = baselines.nearest_k(article_sentences, sentences, 5)
    close = sum(
        max(rouge_l(article_sentences[j], s) for j in best) >= FAITHFUL_ROUGE for s, best in zip(sentences, nearest, strict=True)
    )
    return round(close / len(sentences), 4)


@torch.no_grad()
def answer_nll(
    model: MiniTransformer, tokenizer: Tokenizer, pairs: list[dict[str, Any]], batch_size: int = 32
) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each reference answer given its
    source header, the context it is recited in (qa.answer); the header is not counted.
    Questions about one passage share it: each distinct passage is scored once."""
    pad_id = tokenizer.special_id(END)
    passages = list(dict.fromkeys((p["title"], p["section"], p["answer"]) for p in pairs))
    examples = []
    for title, section, text in passages:
        header = tokenizer.encode(source_header(title, section))
        text_ids = tokenizer.encode(" " + text) + [pad_id]
        ids = (header + text_ids)[: model.config.max_seq_len + 1]
        examples.append((ids, ([0] * len(header) + [1] * len(text_ids))[: len(ids)]))
    results = []
    for start in range(0, len(examples), batch_size):
        inputs, targets, mask = to_batch(examples[start : start + batch_size], pad_id, "cpu")
        nll = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten(), reduction="none").view_as(mask)
        results += list(zip((nll * mask).sum(dim=1).tolist(), mask.sum(dim=1).int().tolist(), strict=True))
    by_passage = dict(zip(passages, results, strict=True))
    return [by_passage[(p["title"], p["section"], p["answer"])] for p in pairs]


# ---------------------------------------------------------------- the inputs


@dataclass
class Inputs:
    """What the stage reads besides the model."""

    test: list[dict[str, Any]]  # template Q&A pairs of facts training never saw
    train: list[dict[str, Any]]  # what closed-book retrieval answers from
    natural: list[dict[str, Any]]
    out_of_scope: list[dict[str, Any]]
    articles: list[dict[str, Any]]  # what open-book retrieval answers from, and faithful answers recite


def read_inputs(args: argparse.Namespace) -> Inputs:
    test, train = utils.read_pairs(args.test), utils.read_pairs(args.train)
    if not test:
        raise utils.UserError(f"{args.test}: no pairs")
    return Inputs(
        test=test,
        train=train,
        natural=read_natural(Path(args.natural)),
        out_of_scope=read_questions(Path(args.out_of_scope)),
        articles=utils.read_articles(Path(args.articles)),
    )


def questions_of(records: list[dict[str, Any]]) -> list[str]:
    return [r["question"] for r in records]


def same_question_share(questions: list[str], train_questions: list[str]) -> float:
    """How many evaluation questions coincide word for word with a training question."""
    seen = {" ".join(normalize(q)) for q in train_questions}
    return share([" ".join(normalize(q)) in seen for q in questions])


def article_sentences(articles: list[dict[str, Any]]) -> list[str]:
    """Every sentence of the articles, lead and sections: what a faithful answer recites."""
    return [s for a in articles for _, text in utils.article_parts(a) for s in utils.split_sentences(text)]


# ---------------------------------------------------------------- asking the systems


@dataclass
class Replies:
    """The model's replies to each question set."""

    test: list[Reply]
    natural: list[Reply]
    out_of_scope: list[Reply]


def ask_together(ask: Callable[[list[str]], list[T]], *question_sets: list[dict[str, Any]]) -> list[list[T]]:
    """One call of ask for the questions of several sets (fuller batches, one TF-IDF fit),
    its results cut back into one list per set."""
    results = ask([q for records in question_sets for q in questions_of(records)])
    parts, start = [], 0
    for records in question_sets:
        parts.append(results[start : start + len(records)])
        start += len(records)
    return parts


def model_replies(
    model: MiniTransformer,
    tokenizer: Tokenizer,
    sources: list[str],
    inputs: Inputs,
    max_new_tokens: int,
    recital_weight: float,
    memory: dict[str, str],
    calibration: Calibration | None,
) -> Replies:
    """The model answers the evaluation questions, all in one call, starting from the
    recitations in memory (src/recite.py), its confidence calibrated (src/calibrate.py)."""
    trie = SourceTrie(tokenizer, sources)
    ask = partial(
        answer,
        model,
        tokenizer,
        trie,
        max_new_tokens=max_new_tokens,
        recital_weight=recital_weight,
        memory=memory,
        calibration=calibration,
    )
    return Replies(*ask_together(ask, inputs.test, inputs.natural, inputs.out_of_scope))


def retrieval_answers(inputs: Inputs) -> dict[str, dict[str, list[str]]]:
    """Each baseline's answers, by question set and system: {"test": {system: answers}, "natural": ...}.
    Retrieval always answers, so asking it the out-of-scope questions would tell nothing."""
    ask = {
        "closed_book_retrieval": partial(baselines.closed_book_answers, inputs.train),
        "open_book_retrieval": partial(baselines.open_book_answers, inputs.articles),
    }
    answers: dict[str, dict[str, list[str]]] = {"test": {}, "natural": {}}
    for system in SYSTEMS[1:]:
        answers["test"][system], answers["natural"][system] = ask_together(ask[system], inputs.test, inputs.natural)
    return answers


# ---------------------------------------------------------------- the sections of eval.json


def template_test_section(
    test: list[dict[str, Any]],
    replies: list[Reply],
    baseline_answers: dict[str, list[str]],
    nll: list[tuple[float, int]],
    min_confidence: float,
) -> dict[str, dict[str, float]]:
    """Template test: every system's answers against the references. The model's scores use
    its full answers (what it recalls); `declined` says how many it would have held back."""
    references = [p["answer"] for p in test]
    texts = [r.text for r in replies]
    model = score(texts, references)
    model.update(
        {
            "source_accuracy": share(right_sources(replies, test)),
            "perplexity": round(math.exp(sum(s for s, _ in nll) / sum(n for _, n in nll)), 3),
            "sentences_2_4": share([2 <= sentence_count(t) <= 4 for t in texts]),
            "declined": declined_share(replies, min_confidence),
        }
    )
    return {"model": model, **{system: score(answers, references) for system, answers in baseline_answers.items()}}


def natural_section(
    natural: list[dict[str, Any]], replies: list[Reply], baseline_answers: dict[str, list[str]], min_confidence: float
) -> dict[str, dict[str, float]]:
    patterns = [q["pattern"] for q in natural]
    return {
        "model": outcomes(given_answers(replies, min_confidence), patterns),
        **{system: outcomes(answers, patterns) for system, answers in baseline_answers.items()},
    }


def natural_per_domain(
    natural: list[dict[str, Any]], replies: list[Reply], baseline_answers: dict[str, list[str]], min_confidence: float
) -> dict[str, dict[str, dict[str, float]]]:
    """natural_section for each domain that has questions, in utils.DOMAINS order."""
    sections = {}
    for domain in utils.DOMAINS:
        index = [i for i, q in enumerate(natural) if q["domain"] == domain]
        if index:
            domain_answers = {system: [answers[i] for i in index] for system, answers in baseline_answers.items()}
            sections[domain] = natural_section(
                [natural[i] for i in index], [replies[i] for i in index], domain_answers, min_confidence
            )
    return sections


def out_of_scope_section(replies: list[Reply], min_confidence: float) -> dict[str, dict[str, float]]:
    """Retrieval always answers, so only the model can decline here."""
    declined = declined_share(replies, min_confidence)
    return {
        "model": {"declined": declined, "answered": round(1 - declined, 4)},
        **{s: {"declined": 0.0, "answered": 1.0} for s in SYSTEMS[1:]},
    }


def eval_metrics(
    inputs: Inputs,
    replies: Replies,
    retrieved: dict[str, dict[str, list[str]]],
    nll: list[tuple[float, int]],
    sources: list[str],
    min_confidence: float,
) -> dict[str, Any]:
    """All of eval.json. `faithful` is over the answers the model gives; `invented_sources`
    counts replies naming a header that is no source (the trie should make it 0)."""
    metrics: dict[str, Any] = template_test_section(inputs.test, replies.test, retrieved["test"], nll, min_confidence)
    given = [r.text for r in replies.test + replies.natural if r.confidence >= min_confidence]
    metrics["model"]["faithful"] = faithful_share(given, article_sentences(inputs.articles))
    valid, answered = set(sources), replies.test + replies.natural + replies.out_of_scope
    metrics["model"]["invented_sources"] = sum(r.source not in valid for r in answered)
    metrics["natural"] = natural_section(inputs.natural, replies.natural, retrieved["natural"], min_confidence)
    metrics["natural"]["same_as_training_question"] = same_question_share(
        questions_of(inputs.natural), questions_of(inputs.train)
    )
    metrics["out_of_scope"] = out_of_scope_section(replies.out_of_scope, min_confidence)
    metrics["num_questions"] = {
        "test": len(inputs.test),
        "natural": len(inputs.natural),
        "out_of_scope": len(inputs.out_of_scope),
    }
    return metrics


# ---------------------------------------------------------------- choosing the threshold


def tradeoff_rows(inputs: Inputs, replies: Replies, validation: list[dict[str, float]]) -> list[dict[str, float]]:
    """For each threshold: what declining below it gives on the validation questions (where
    the threshold is chosen: src/calibrate.py's rows) and on the evaluation sets (reported,
    never tuned on)."""
    patterns = [q["pattern"] for q in inputs.natural]
    rows = []
    for chosen_on in validation:
        t = chosen_on["threshold"]
        natural = outcomes(given_answers(replies.natural, t), patterns)
        rows.append(
            {
                **chosen_on,
                "natural_right": natural["accuracy"],
                "natural_wrong": natural["wrong"],
                "out_of_scope_declined": declined_share(replies.out_of_scope, t),
            }
        )
    return rows


# ---------------------------------------------------------------- outputs


def write_plot(folder: Path, stem: str, rows: list[dict[str, Any]], fig: Figure) -> None:
    """A plot as its numbers (stem.csv) and its picture (stem.png)."""
    with utils.atomic_path(folder / f"{stem}.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig.tight_layout()
    with utils.atomic_path(folder / f"{stem}.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_per_domain(rows: list[dict[str, Any]]) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.27
    for i, system in enumerate(SYSTEMS):
        ax.bar([x + (i - 1) * width for x in range(len(rows))], [r[system] for r in rows], width, label=system)
    ax.set_xticks(range(len(rows)), [r["domain"] for r in rows])
    ax.set_ylabel("natural questions answered right")
    ax.set_ylim(0, 1)
    ax.set_title("Model vs retrieval baselines, per domain")
    ax.legend()
    return fig


def plot_tradeoff(rows: list[dict[str, float]], min_confidence: float) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    thresholds = [r["threshold"] for r in rows]
    for key, style in (
        ("val_right", "-"),
        ("val_wrong", "-"),
        ("calibration_declined", "-"),
        ("natural_right", "--"),
        ("natural_wrong", "--"),
        ("out_of_scope_declined", "--"),
    ):
        ax.plot(thresholds, [r[key] for r in rows], style, label=key)
    ax.axvline(min_confidence, color="grey", linewidth=1)
    ax.set_xlabel("min_confidence (decline below)")
    ax.set_ylabel("share of questions")
    ax.set_title("Answer or decline: validation (solid, where the threshold is chosen), evaluation sets (dashed)")
    ax.legend(fontsize=8)
    return fig


def write_plots(
    folder: Path, per_domain: dict[str, dict[str, dict[str, float]]], rows: list[dict[str, float]], min_confidence: float
) -> None:
    domain_rows = [{"domain": d, **{s: result[s]["accuracy"] for s in SYSTEMS}} for d, result in per_domain.items()]
    write_plot(folder, "eval_per_domain", domain_rows, plot_per_domain(domain_rows))
    write_plot(folder, "decline_tradeoff", rows, plot_tradeoff(rows, min_confidence))


def write_answers(folder: Path, inputs: Inputs, replies: Replies, min_confidence: float) -> None:
    """Every answer next to its source, confidence and reference, for a person to read."""
    utils.write_jsonl(
        folder / "test_answers.jsonl",
        (
            {
                "domain": p["domain"],
                "question": p["question"],
                "source": r.source,
                "confidence": round(r.confidence, 4),
                "generated": r.text,
                "reference_source": source_header(p["title"], p["section"]),
                "reference": p["answer"],
            }
            for p, r in zip(inputs.test, replies.test, strict=True)
        ),
    )
    utils.write_jsonl(
        folder / "natural_answers.jsonl",
        (
            {
                "id": q["id"],
                "question": q["question"],
                "source": r.source,
                "confidence": round(r.confidence, 4),
                "declined": r.confidence < min_confidence,
                "right": bool(re.search(q["pattern"], r.text, re.I)),
                "generated": r.text,
                "article": q["article"],
                "pattern": q["pattern"],
            }
            for q, r in zip(inputs.natural, replies.natural, strict=True)
        ),
    )


def summary(metrics: dict[str, Any], min_confidence: float, suggested: float) -> str:
    """The one line the stage prints."""
    model, natural = metrics["model"], metrics["natural"]
    return (
        f"eval: test rougeL {model['rougeL_f1']:.3f} (open book {metrics['open_book_retrieval']['rougeL_f1']:.3f}); "
        f"natural right/wrong/declined {natural['model']}; open book {natural['open_book_retrieval']['accuracy']}; "
        f"out of scope declined {metrics['out_of_scope']['model']['declined']}; faithful {model['faithful']}; "
        f"min_confidence {min_confidence} (validation suggests {suggested})"
    )


# ---------------------------------------------------------------- the stage


def output_paths(args: argparse.Namespace) -> list[Path]:
    """Every file the stage writes (write_plots and write_answers name them the same way)."""
    plots, answers = Path(args.plots), Path(args.answers_dir)
    return [
        Path(args.metrics),
        Path(args.details),
        *(plots / f"{stem}.{kind}" for stem in ("eval_per_domain", "decline_tradeoff") for kind in ("csv", "png")),
        answers / "test_answers.jsonl",
        answers / "natural_answers.jsonl",
    ]


def evaluate(args: argparse.Namespace) -> None:
    """The stage top to bottom; its outputs are replaced as one set, so the metrics always
    describe the answers beside them."""
    outputs = output_paths(args)
    utils.recover_outputs(*outputs)
    max_new_tokens, min_confidence, recital_weight = answer_settings(args.params)
    inputs = read_inputs(args)
    model, tokenizer, sources = load_model(args.checkpoint)
    memory = recitations_beside(args.checkpoint, max_new_tokens)
    calibration, calibrated = read_calibration(args.calibration, made_for(args.checkpoint, max_new_tokens, recital_weight))
    if not calibrated:
        raise utils.UserError(f"{args.calibration}: missing, or made by another checkpoint or settings: python -m src.calibrate")
    replies = model_replies(model, tokenizer, sources, inputs, max_new_tokens, recital_weight, memory, calibration)
    retrieved = retrieval_answers(inputs)
    metrics = eval_metrics(inputs, replies, retrieved, answer_nll(model, tokenizer, inputs.test), sources, min_confidence)
    per_domain = natural_per_domain(inputs.natural, replies.natural, retrieved["natural"], min_confidence)
    rows = tradeoff_rows(inputs, replies, calibrated["validation"])
    suggested = calibrated["suggested_min_confidence"]
    with utils.atomic_outputs(*outputs):
        utils.write_json(args.metrics, metrics)
        utils.write_json(args.details, {"natural_per_domain": per_domain, "suggested_min_confidence": suggested})
        write_plots(Path(args.plots), per_domain, rows, min_confidence)
        write_answers(Path(args.answers_dir), inputs, replies, min_confidence)
    print(summary(metrics, min_confidence, suggested))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--test", default="data/splits/test.jsonl")
    parser.add_argument("--train", default="data/splits/train.jsonl")
    parser.add_argument("--articles", default="data/raw/articles.jsonl")
    parser.add_argument("--natural", default="evalsets/natural")
    parser.add_argument("--out-of-scope", default="evalsets/out_of_scope.jsonl")
    parser.add_argument("--calibration", default="models/calibration.json", help="src/calibrate.py's")
    parser.add_argument("--checkpoint", default="models/model.pt")
    parser.add_argument("--metrics", default="metrics/eval.json")
    parser.add_argument("--details", default="metrics/eval_details.json")
    parser.add_argument("--answers-dir", default="metrics")
    parser.add_argument("--plots", default="plots")


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, evaluate)
