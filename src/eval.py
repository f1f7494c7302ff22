"""The eval stage: how well does the model answer held-out questions?

    python src/eval.py

On the test split (facts whose Q&A pairs training never saw), it scores three systems
with the same metrics: the model (greedy answers), and the two retrieval baselines of
baselines.py. Writes metrics/eval.json, plots/eval_per_domain.{csv,png} and
metrics/test_answers.jsonl (question, the model's source and answer, the reference, for a person to read).
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
from tqdm import tqdm

import baselines
import utils
from qa import END, encode_pairs, load_model, reply, source_header, split_source, to_batch

SYSTEMS = ("model", "closed_book_retrieval", "open_book_retrieval")
ROUGE = rouge_scorer.RougeScorer(["rougeL"])


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


@torch.no_grad()
def answer_nll(model, tokenizer, pairs: list[dict], batch_size: int = 32) -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each reference answer given its
    question and source header (the header's own tokens are not counted)."""
    pad_id = tokenizer.special_id(END)
    max_len = model.config.max_seq_len + 1
    examples = []
    for (ids, mask), pair in zip(encode_pairs(tokenizer, pairs, max_len), pairs):
        start, length = mask.index(1), len(tokenizer.encode(source_header(pair["title"], pair["section"])))
        examples.append((ids, mask[:start] + [0] * length + mask[start + length:]))
    results = []
    for start in range(0, len(examples), batch_size):
        inputs, targets, mask = to_batch(examples[start:start + batch_size], pad_id, "cpu")
        nll = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten(), reduction="none").view_as(mask)
        results += list(zip((nll * mask).sum(dim=1).tolist(), mask.sum(dim=1).int().tolist()))
    return results


def model_scores(generated: list[str], references: list[str], nll: list[tuple[float, int]], right_source: list[bool]) -> dict[str, float]:
    scores = score(generated, references)
    scores["source_accuracy"] = round(sum(right_source) / len(right_source), 4)  # named the reference's section
    scores["perplexity"] = round(math.exp(sum(s for s, _ in nll) / sum(n for _, n in nll)), 3)
    scores["sentences_2_4"] = round(sum(2 <= sentence_count(g) <= 4 for g in generated) / len(generated), 4)
    return scores


# ---------------------------------------------------------------- outputs

def write_plots(per_domain: dict[str, dict], csv_path: Path, png_path: Path) -> None:
    rows = [{"domain": d, **{s: per_domain[d][s]["rougeL_f1"] for s in SYSTEMS}} for d in per_domain]
    with utils.atomic_path(csv_path) as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["domain", *SYSTEMS])
            writer.writeheader()
            writer.writerows(rows)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.27
    for i, system in enumerate(SYSTEMS):
        ax.bar([x + (i - 1) * width for x in range(len(rows))], [r[system] for r in rows], width, label=system)
    ax.set_xticks(range(len(rows)), [r["domain"] for r in rows])
    ax.set_ylabel("ROUGE-L F1 on test questions")
    ax.set_ylim(0, 1)
    ax.set_title("Model vs retrieval baselines, per domain")
    ax.legend()
    fig.tight_layout()
    with utils.atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def evaluate(args: argparse.Namespace) -> None:
    params = utils.load_params("eval", args.params)
    max_new_tokens = utils.require(params, "max_new_tokens", int)
    test = utils.read_pairs(args.test)
    if not test:
        raise utils.UserError(f"{args.test}: no test pairs")
    train_pairs = utils.read_pairs(args.train)
    articles = utils.read_articles(Path(args.articles))
    model, tokenizer = load_model(args.checkpoint)

    questions = [p["question"] for p in test]
    references = [p["answer"] for p in test]
    replies = [split_source(reply(model, tokenizer, q, max_new_tokens)) for q in tqdm(questions, desc="eval", mininterval=2.0)]
    answers = {
        "model": [text for _, text in replies],
        "closed_book_retrieval": baselines.closed_book_answers(train_pairs, questions),
        "open_book_retrieval": baselines.open_book_answers(articles, questions),
    }
    nll = answer_nll(model, tokenizer, test)
    reference_sources = [source_header(p["title"], p["section"]) for p in test]

    def scores_for(indices: list[int]) -> dict[str, dict]:
        refs = [references[i] for i in indices]
        result = {s: score([answers[s][i] for i in indices], refs) for s in SYSTEMS}
        result["model"] = model_scores([answers["model"][i] for i in indices], refs, [nll[i] for i in indices],
                                       [replies[i][0] == reference_sources[i] for i in indices])
        return result

    metrics = scores_for(list(range(len(test))))
    domains = [d for d in utils.DOMAINS if any(p["domain"] == d for p in test)]
    metrics["per_domain"] = {d: scores_for([i for i, p in enumerate(test) if p["domain"] == d]) for d in domains}
    metrics["num_questions"] = len(test)
    utils.write_json(args.metrics, metrics)
    write_plots(metrics["per_domain"], Path(args.plot_csv), Path(args.plot_png))
    utils.write_jsonl(args.answers, (
        {"domain": p["domain"], "question": p["question"], "source": replies[i][0], "generated": answers["model"][i],
         "reference_source": reference_sources[i], "reference": p["answer"]}
        for i, p in enumerate(test)
    ))
    print("eval: " + "; ".join(f"{s} rougeL {metrics[s]['rougeL_f1']:.3f}" for s in SYSTEMS)
          + f"; perplexity {metrics['model']['perplexity']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test", default="data/splits/test.jsonl")
    parser.add_argument("--train", default="data/splits/train.jsonl")
    parser.add_argument("--articles", default="data/raw/articles.jsonl")
    parser.add_argument("--checkpoint", default="models/model.pt")
    parser.add_argument("--metrics", default="metrics/eval.json")
    parser.add_argument("--answers", default="metrics/test_answers.jsonl")
    parser.add_argument("--plot-csv", default="plots/eval_per_domain.csv")
    parser.add_argument("--plot-png", default="plots/eval_per_domain.png")
    parser.add_argument("--params", default="params.yaml")
    evaluate(parser.parse_args())


if __name__ == "__main__":
    utils.run_cli(main)
