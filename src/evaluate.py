"""The eval stage: how well does the model answer, and does it know when it doesn't know?

    python src/eval.py

Three question sets, three systems (the model, and the two retrieval baselines of baselines.py):
  - test: the template questions of the test split (facts whose Q&A pairs training never
    saw), scored against the reference answer (ROUGE-L, token F1, exact match);
  - natural (evalsets/natural/): questions written by hand the way people type them, each
    right if the answer matches its pattern; the model may decline instead;
  - out_of_scope (evalsets/out_of_scope.jsonl): questions the articles can't answer; the
    right behaviour is to decline.
The model declines when its confidence in the source it would recite is below
eval.min_confidence; plots/decline_tradeoff.csv shows what each threshold would give, on
validation data (val split + calibration/out_of_scope.jsonl, where the threshold is
chosen) and on the evaluation sets. Writes metrics/eval.json (headline numbers),
metrics/eval_details.json (per domain), metrics/{test,natural}_answers.jsonl and plots/.
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # render to files, no window
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from rouge_score import rouge_scorer

from src import baselines
from src import utils
from src.qa import END, Reply, SourceTrie, answer, load_model, name, source_header, to_batch

SYSTEMS = ("model", "closed_book_retrieval", "open_book_retrieval")
ROUGE = rouge_scorer.RougeScorer(["rougeL"])
FAITHFUL_ROUGE = 0.8
THRESHOLDS = [round(0.05 * i, 2) for i in range(21)]
CALIBRATION_DECLINED = 0.85  # the threshold rule: decline at least this share of calibration's out-of-scope questions


# ---------------------------------------------------------------- scores

def normalize(text: str) -> list[str]:
    """Lower-case words without punctuation or articles (SQuAD-style)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return [w for w in text.split() if w not in ("a", "an", "the")]


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize(prediction), normalize(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def score(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-L F1, token F1 and exact match over paired answers."""
    n = len(references)
    return {
        "rougeL_f1": round(sum(ROUGE.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)) / n, 4),
        "token_f1": round(sum(token_f1(p, r) for p, r in zip(predictions, references)) / n, 4),
        "exact_match": round(sum(normalize(p) == normalize(r) for p, r in zip(predictions, references)) / n, 4),
    }


def sentence_count(text: str) -> int:
    return len([s for s in utils.split_sentences(text) if re.search(r"[.!?]$", s)])


def outcomes(answers: list[str | None], patterns: list[str]) -> dict[str, float]:
    """Shares of right, wrong and declined (None) answers to pattern-checked questions."""
    right = sum(a is not None and re.search(p, a, re.I) is not None for a, p in zip(answers, patterns))
    declined = sum(a is None for a in answers)
    n = len(answers)
    return {"accuracy": round(right / n, 4), "wrong": round((n - right - declined) / n, 4), "declined": round(declined / n, 4)}


def faithful_share(answers: list[str], article_sentences: list[str]) -> float:
    """Share of answer sentences that closely match some article sentence (ROUGE-L F1 >=
    0.8 against the best of the 5 TF-IDF-nearest): recitation, not invented text."""
    sentences = [s for a in answers for s in utils.split_sentences(a)]
    if not sentences:
        return 1.0
    nearest = baselines.nearest_k(article_sentences, sentences, 5)
    close = sum(max(ROUGE.score(article_sentences[j], s)["rougeL"].fmeasure for j in best) >= FAITHFUL_ROUGE
                for s, best in zip(sentences, nearest))
    return round(close / len(sentences), 4)


@torch.no_grad()
def answer_nll(model, tokenizer, pairs: list[dict], batch_size: int = 32) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each reference answer given its
    source header, the context it is recited in (qa.answer); the header is not counted."""
    pad_id = tokenizer.special_id(END)
    examples = []
    for pair in pairs:
        header = tokenizer.encode(source_header(pair["title"], pair["section"]))
        text = tokenizer.encode(" " + pair["answer"]) + [pad_id]
        ids = (header + text)[: model.config.max_seq_len + 1]
        examples.append((ids, ([0] * len(header) + [1] * len(text))[:len(ids)]))
    results = []
    for start in range(0, len(examples), batch_size):
        inputs, targets, mask = to_batch(examples[start:start + batch_size], pad_id, "cpu")
        nll = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten(), reduction="none").view_as(mask)
        results += list(zip((nll * mask).sum(dim=1).tolist(), mask.sum(dim=1).int().tolist()))
    return results


# ---------------------------------------------------------------- the question sets

def read_natural(folder: Path) -> list[dict[str, Any]]:
    """The hand-written natural questions, one JSONL file per domain."""
    check = utils.record_checker({"id": str, "domain": str, "question": str, "article": str, "pattern": str})
    questions = [q for path in sorted(folder.glob("*.jsonl")) for q in utils.read_jsonl(path, check)]
    if not questions:
        raise utils.UserError(f"{folder}: no natural questions (*.jsonl)")
    for q in questions:
        try:
            re.compile(q["pattern"])
        except re.error as err:
            raise utils.UserError(f"{folder}: question {q['id']}: bad pattern ({err})") from None
    return questions


def read_questions(path: Path) -> list[dict[str, Any]]:
    """Out-of-scope questions: any JSONL with a 'question' string per line."""
    return utils.read_jsonl(path, utils.record_checker({"question": str}))


def same_question_share(questions: list[str], train_questions: list[str]) -> float:
    """How many evaluation questions coincide word for word with a training question."""
    seen = {" ".join(normalize(q)) for q in train_questions}
    return round(sum(" ".join(normalize(q)) in seen for q in questions) / len(questions), 4)


# ---------------------------------------------------------------- the sections of eval.json

def test_section(test: list[dict], replies: list[Reply], baseline_answers: dict[str, list[str]], nll, min_confidence: float) -> dict:
    """Template test: every system's answers against the references. The model's scores use
    its full answers (what it recalls); `declined` says how many it would have held back."""
    references = [p["answer"] for p in test]
    texts = [r.text for r in replies]
    result = {"model": score(texts, references)}
    result["model"].update({
        "source_accuracy": round(sum(r.source == source_header(p["title"], p["section"]) for r, p in zip(replies, test)) / len(test), 4),
        "perplexity": round(math.exp(sum(s for s, _ in nll) / sum(n for _, n in nll)), 3),
        "sentences_2_4": round(sum(2 <= sentence_count(t) <= 4 for t in texts) / len(texts), 4),
        "declined": round(sum(r.confidence < min_confidence for r in replies) / len(replies), 4),
    })
    for system, answers in baseline_answers.items():
        result[system] = score(answers, references)
    return result


def natural_section(natural: list[dict], replies: list[Reply], baseline_answers: dict[str, list[str]], min_confidence: float) -> dict:
    patterns = [q["pattern"] for q in natural]
    shown = [r.text if r.confidence >= min_confidence else None for r in replies]
    result = {"model": outcomes(shown, patterns)}
    for system, answers in baseline_answers.items():
        result[system] = outcomes(answers, patterns)
    return result


def out_of_scope_section(replies: list[Reply], min_confidence: float) -> dict:
    """Retrieval always answers, so only the model can decline here."""
    declined = round(sum(r.confidence < min_confidence for r in replies) / len(replies), 4)
    return {"model": {"declined": declined, "answered": round(1 - declined, 4)},
            **{s: {"declined": 0.0, "answered": 1.0} for s in SYSTEMS[1:]}}


def tradeoff_rows(val: list[dict], val_replies: list[Reply], calibration_replies: list[Reply],
                  natural: list[dict], natural_replies: list[Reply], oos_replies: list[Reply]) -> list[dict]:
    """For each threshold: what declining below it gives, on validation data (where the
    threshold is chosen) and on the evaluation sets (reported, never tuned on)."""
    val_right = [r.source == source_header(p["title"], p["section"]) for r, p in zip(val_replies, val)]
    rows = []
    for t in THRESHOLDS:
        natural_outcome = outcomes([r.text if r.confidence >= t else None for r in natural_replies], [q["pattern"] for q in natural])
        rows.append({
            "threshold": t,
            "val_right": round(sum(ok and r.confidence >= t for ok, r in zip(val_right, val_replies)) / len(val), 4),
            "val_declined": round(sum(r.confidence < t for r in val_replies) / len(val), 4),
            "calibration_declined": round(sum(r.confidence < t for r in calibration_replies) / len(calibration_replies), 4),
            "natural_right": natural_outcome["accuracy"],
            "natural_wrong": natural_outcome["wrong"],
            "out_of_scope_declined": round(sum(r.confidence < t for r in oos_replies) / len(oos_replies), 4),
        })
    return rows


def suggested_threshold(rows: list[dict]) -> float:
    """The rule that picks eval.min_confidence, on validation data only: the lowest
    threshold that declines at least CALIBRATION_DECLINED of calibration/'s out-of-scope
    questions (it keeps the most in-scope answers among those)."""
    return min((r["threshold"] for r in rows if r["calibration_declined"] >= CALIBRATION_DECLINED), default=1.0)


# ---------------------------------------------------------------- outputs

def write_csv(path: Path, rows: list[dict]) -> None:
    with utils.atomic_path(path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def write_png(path: Path, fig) -> None:
    fig.tight_layout()
    with utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_per_domain(rows: list[dict]) -> Any:
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


def plot_tradeoff(rows: list[dict], min_confidence: float) -> Any:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    thresholds = [r["threshold"] for r in rows]
    for key, style in (("val_right", "-"), ("val_declined", "-"), ("calibration_declined", "-"),
                       ("natural_right", "--"), ("natural_wrong", "--"), ("out_of_scope_declined", "--")):
        ax.plot(thresholds, [r[key] for r in rows], style, label=key)
    ax.axvline(min_confidence, color="grey", linewidth=1)
    ax.set_xlabel("min_confidence (decline below)")
    ax.set_ylabel("share of questions")
    ax.set_title("Answer or decline: validation (solid, where the threshold is chosen), evaluation sets (dashed)")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- main

def evaluate(args: argparse.Namespace) -> None:
    params = utils.load_params("eval", args.params)
    max_new_tokens = utils.require(params, "max_new_tokens", int)
    min_confidence = utils.require(params, "min_confidence", float)
    test, val, train_pairs = utils.read_pairs(args.test), utils.read_pairs(args.val), utils.read_pairs(args.train)
    if not test or not val:
        raise utils.UserError(f"{args.test if not test else args.val}: no pairs")
    natural = read_natural(Path(args.natural))
    oos, calibration = read_questions(Path(args.out_of_scope)), read_questions(Path(args.calibration))
    articles = utils.read_articles(Path(args.articles))
    model, tokenizer, sources = load_model(args.checkpoint)
    trie = SourceTrie(tokenizer, sources)

    asked = [p["question"] for p in test] + [q["question"] for q in natural] + [q["question"] for q in oos]
    replies = answer(model, tokenizer, trie, asked, max_new_tokens)
    test_replies, natural_replies, oos_replies = replies[:len(test)], replies[len(test):len(test) + len(natural)], replies[len(test) + len(natural):]
    named = name(model, tokenizer, trie, [p["question"] for p in val] + [q["question"] for q in calibration])  # calibration needs no text
    val_replies, calibration_replies = named[:len(val)], named[len(val):]

    retrieved = {
        "closed_book_retrieval": baselines.closed_book_answers(train_pairs, asked),
        "open_book_retrieval": baselines.open_book_answers(articles, asked),
    }
    on = lambda lo, hi: {s: a[lo:hi] for s, a in retrieved.items()}  # noqa: E731 (one slice of every baseline)
    article_sentences = [s for a in articles for part in [a["lead"]] + [x["text"] for x in a["sections"]] for s in utils.split_sentences(part)]
    answered = [r.text for r in test_replies + natural_replies if r.confidence >= min_confidence]
    metrics = test_section(test, test_replies, on(0, len(test)), answer_nll(model, tokenizer, test), min_confidence)
    metrics["model"]["faithful"] = faithful_share(answered, article_sentences)
    valid = set(sources)
    metrics["model"]["invented_sources"] = sum(r.source not in valid for r in replies)
    metrics["natural"] = natural_section(natural, natural_replies, on(len(test), len(test) + len(natural)), min_confidence)
    metrics["natural"]["same_as_training_question"] = same_question_share([q["question"] for q in natural], [p["question"] for p in train_pairs])
    metrics["out_of_scope"] = out_of_scope_section(oos_replies, min_confidence)
    metrics["num_questions"] = {"test": len(test), "natural": len(natural), "out_of_scope": len(oos)}
    utils.write_json(args.metrics, metrics)

    per_domain = {}
    for domain in utils.DOMAINS:
        index = [i for i, q in enumerate(natural) if q["domain"] == domain]
        if index:
            per_domain[domain] = natural_section([natural[i] for i in index], [natural_replies[i] for i in index],
                                                 {s: [a[len(test) + i] for i in index] for s, a in retrieved.items()}, min_confidence)
    rows = tradeoff_rows(val, val_replies, calibration_replies, natural, natural_replies, oos_replies)
    utils.write_json(args.details, {"natural_per_domain": per_domain, "suggested_min_confidence": suggested_threshold(rows)})
    domain_rows = [{"domain": d, **{s: per_domain[d][s]["accuracy"] for s in SYSTEMS}} for d in per_domain]
    write_csv(Path(args.plots) / "eval_per_domain.csv", domain_rows)
    write_png(Path(args.plots) / "eval_per_domain.png", plot_per_domain(domain_rows))
    write_csv(Path(args.plots) / "decline_tradeoff.csv", rows)
    write_png(Path(args.plots) / "decline_tradeoff.png", plot_tradeoff(rows, min_confidence))
    write_answers(Path(args.answers_dir), test, test_replies, natural, natural_replies, min_confidence)
    print(f"eval: test rougeL {metrics['model']['rougeL_f1']:.3f} (open book {metrics['open_book_retrieval']['rougeL_f1']:.3f}); "
          f"natural right/wrong/declined {metrics['natural']['model']}; open book {metrics['natural']['open_book_retrieval']['accuracy']}; "
          f"out of scope declined {metrics['out_of_scope']['model']['declined']}; faithful {metrics['model']['faithful']}; "
          f"min_confidence {min_confidence} (validation suggests {suggested_threshold(rows)})")


def write_answers(folder: Path, test: list[dict], test_replies: list[Reply], natural: list[dict],
                  natural_replies: list[Reply], min_confidence: float) -> None:
    """Every answer next to its source, confidence and reference, for a person to read."""
    utils.write_jsonl(folder / "test_answers.jsonl", (
        {"domain": p["domain"], "question": p["question"], "source": r.source, "confidence": round(r.confidence, 4),
         "generated": r.text, "reference_source": source_header(p["title"], p["section"]), "reference": p["answer"]}
        for p, r in zip(test, test_replies)))
    utils.write_jsonl(folder / "natural_answers.jsonl", (
        {"id": q["id"], "question": q["question"], "source": r.source, "confidence": round(r.confidence, 4),
         "declined": r.confidence < min_confidence, "right": bool(re.search(q["pattern"], r.text, re.I)),
         "generated": r.text, "article": q["article"], "pattern": q["pattern"]}
        for q, r in zip(natural, natural_replies)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", default="data/splits/test.jsonl")
    parser.add_argument("--val", default="data/splits/val.jsonl")
    parser.add_argument("--train", default="data/splits/train.jsonl")
    parser.add_argument("--articles", default="data/raw/articles.jsonl")
    parser.add_argument("--natural", default="evalsets/natural")
    parser.add_argument("--out-of-scope", default="evalsets/out_of_scope.jsonl")
    parser.add_argument("--calibration", default="calibration/out_of_scope.jsonl")
    parser.add_argument("--checkpoint", default="models/model.pt")
    parser.add_argument("--metrics", default="metrics/eval.json")
    parser.add_argument("--details", default="metrics/eval_details.json")
    parser.add_argument("--answers-dir", default="metrics")
    parser.add_argument("--plots", default="plots")
    parser.add_argument("--params", default="params.yaml")
    evaluate(parser.parse_args())


if __name__ == "__main__":
    utils.run_cli(main)
