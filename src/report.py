"""The report stage: one HTML page that shows how training and evaluation went.

    python -m src.report            # writes reports/index.html; open it in any browser

The numbers are in metrics/ and plots/ already; this puts them where a person looks: the
loss curves, the model's scores beside the two retrieval baselines (per domain too), what
it does with natural and out-of-scope questions, and its best and worst answers next to the
references. The page holds everything itself (pictures are PNGs inside it as data: URIs; no
scripts, no links out), so it opens from the repo with no server, and the same inputs give
the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # render to files, no window
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from src import utils

SYSTEMS = ("model", "closed_book_retrieval", "open_book_retrieval")
SAMPLES = 5  # answers shown per sample table
TEST_ANSWER_FIELDS = {
    "question": str,
    "source": str,
    "confidence": float,
    "generated": str,
    "reference_source": str,
    "reference": str,
}
NATURAL_ANSWER_FIELDS = {
    "question": str,
    "source": str,
    "confidence": float,
    "declined": bool,
    "right": bool,
    "generated": str,
    "article": str,
    "pattern": str,
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; white-space: pre-wrap; }
th { background: #f0f0f0; }
img { max-width: 100%; }
"""


# ---------------------------------------------------------------- reading the inputs


def read_json(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(utils.read_text(path))
    except json.JSONDecodeError as err:
        raise utils.UserError(f"{path}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise utils.UserError(f"{path}: expected a JSON object")
    return data


def lookup(data: dict[str, Any], keys: str, where: str | Path) -> Any:
    """data["natural"]["model"] for keys "natural.model"; a missing key is a UserError naming the file.

    >>> lookup({"natural": {"model": {"accuracy": 0.5}}}, "natural.model.accuracy", "eval.json")
    0.5
    """
    value = data
    for key in keys.split("."):
        if not isinstance(value, dict) or key not in value:
            raise utils.UserError(f"{where}: missing key '{keys}'")
        value = value[key]
    return value


LOSS_COLUMNS = ("step", "train_loss", "val_loss")


def read_loss(path: str | Path) -> list[dict[str, float]]:
    """plots/train_loss.csv as rows of numbers: step, train_loss, val_loss."""
    rows = []
    for line_no, row in enumerate(csv.DictReader(io.StringIO(utils.read_text(path))), start=2):  # line 1: the header
        try:
            rows.append({key: float(row[key]) for key in LOSS_COLUMNS})
        except (KeyError, TypeError, ValueError):
            raise utils.UserError(f"{path}:{line_no}: expected numbers in columns {', '.join(LOSS_COLUMNS)}") from None
    if not rows:
        raise utils.UserError(f"{path}: no rows")
    return rows


def read_png(path: str | Path) -> bytes:
    if not Path(path).is_file():
        raise utils.UserError(f"{path}: file not found")
    data = Path(path).read_bytes()
    if not data.startswith(PNG_MAGIC):
        raise utils.UserError(f"{path}: not a PNG image")
    return data


# ---------------------------------------------------------------- HTML pieces


def table(header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table of plain values (escaped; floats with 3 decimals)."""

    def cell(value: Any) -> str:
        return html.escape(f"{value:.3f}" if isinstance(value, float) else str(value))

    head = "".join(f"<th>{cell(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def image(png: bytes, alt: str) -> str:
    """A PNG inside the page, as a data: URI."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">\n'


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}">\n<h2>{html.escape(title)}</h2>\n' + "".join(parts) + "</section>\n"


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>\n"


# ---------------------------------------------------------------- the sections


def plot_loss(rows: list[dict[str, float]]) -> Figure:
    fig, ax = plt.subplots(figsize=(9, 4))
    steps = [r["step"] for r in rows]
    for key in ("train_loss", "val_loss"):
        ax.plot(steps, [r[key] for r in rows], marker=".", label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (cross-entropy per answer token)")
    ax.set_yscale("log")
    ax.set_title("Training and validation loss")
    ax.legend()
    return fig


def training_section(train: dict[str, Any], loss: list[dict[str, float]], where: str) -> str:
    keys = ("steps", "num_params", "best_val_loss", "final_train_loss")
    return section(
        "training",
        "Training",
        table(list(keys), [[lookup(train, key, where) for key in keys]]),
        image(figure_png(plot_loss(loss)), "training and validation loss per step"),
    )


def held_out_section(metrics: dict[str, Any], where: str) -> str:
    scores = ("rougeL_f1", "token_f1", "exact_match")
    checks = ("source_accuracy", "declined", "faithful", "invented_sources", "perplexity")
    return section(
        "test",
        "Test questions (facts whose questions training never saw)",
        table(["system", *scores], [[system] + [lookup(metrics, f"{system}.{s}", where) for s in scores] for system in SYSTEMS]),
        paragraph("The model's answers, checked:"),
        table(list(checks), [[lookup(metrics, f"model.{key}", where) for key in checks]]),
    )


def per_domain_section(details: dict[str, Any], per_domain_png: bytes, where: str) -> str:
    per_domain = lookup(details, "natural_per_domain", where)
    rows = [[domain] + [lookup(per_domain, f"{domain}.{s}.accuracy", where) for s in SYSTEMS] for domain in per_domain]
    return section(
        "per-domain",
        "Natural questions answered right, per domain",
        table(["domain", *SYSTEMS], rows),
        image(per_domain_png, "natural questions answered right per domain, model and baselines"),
    )


def natural_section(metrics: dict[str, Any], details: dict[str, Any], tradeoff_png: bytes, where: str, details_where: str) -> str:
    natural = [[s] + [lookup(metrics, f"natural.{s}.{k}", where) for k in ("accuracy", "wrong", "declined")] for s in SYSTEMS]
    out = [[s] + [lookup(metrics, f"out_of_scope.{s}.{k}", where) for k in ("declined", "answered")] for s in SYSTEMS]
    suggested = lookup(details, "suggested_min_confidence", details_where)
    same = lookup(metrics, "natural.same_as_training_question", where)
    return section(
        "natural",
        "Natural and out-of-scope questions",
        paragraph(f"Questions written the way people type them ({same:.1%} are the same as a training question):"),
        table(["system", "right", "wrong", "declined"], natural),
        paragraph("Questions the articles can't answer (declining is right):"),
        table(["system", "declined", "answered"], out),
        paragraph(f"Where to decline: validation data suggests min_confidence {suggested}."),
        image(tradeoff_png, "answer or decline, for each min_confidence"),
    )


def most_confident(answers: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool], key: str) -> list[dict[str, Any]]:
    """The SAMPLES most confident answers that `keep` accepts, one per value of `key`."""
    chosen: dict[str, dict[str, Any]] = {}
    for a in sorted(answers, key=lambda a: -a["confidence"]):  # stable: ties keep the file's order
        if keep(a) and len(chosen) < SAMPLES:
            chosen.setdefault(a[key], a)
    return list(chosen.values())


def answers_section(test: list[dict[str, Any]], natural: list[dict[str, Any]]) -> str:
    """Best: the right source, most confident first; worst: a wrong source, most confident
    first (the model sure of the wrong thing). One answer per reference passage: the
    paraphrases of its question get the same answer."""
    best = most_confident(test, lambda a: a["source"] == a["reference_source"], "reference_source")
    worst = most_confident(test, lambda a: a["source"] != a["reference_source"], "reference_source")
    wrong = most_confident(natural, lambda a: not a["right"] and not a["declined"], "question")
    header = ["question", "the model's answer", "confidence", "reference"]

    def with_references(answers: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [a["question"], f"{a['source']} {a['generated']}", a["confidence"], f"{a['reference_source']} {a['reference']}"]
            for a in answers
        ]

    natural_rows = [
        [a["question"], f"{a['source']} {a['generated']}", a["confidence"], f"article {a['article']}, matching /{a['pattern']}/"]
        for a in wrong
    ]
    return section(
        "answers",
        "Best and worst answers",
        paragraph("Test questions, the right source, most confident first:"),
        table(header, with_references(best)),
        paragraph("Test questions, a wrong source, most confident first:"),
        table(header, with_references(worst)),
        paragraph("Natural questions answered wrong instead of declined, most confident first:"),
        table(header, natural_rows),
    )


# ---------------------------------------------------------------- the stage


def build_page(args: argparse.Namespace) -> str:
    metrics, details = read_json(args.metrics), read_json(args.details)
    test = utils.read_jsonl(args.test_answers, utils.record_checker(TEST_ANSWER_FIELDS))
    natural = utils.read_jsonl(args.natural_answers, utils.record_checker(NATURAL_ANSWER_FIELDS))
    body = (
        training_section(read_json(args.train_metrics), read_loss(args.loss), args.train_metrics)
        + held_out_section(metrics, args.metrics)
        + per_domain_section(details, read_png(args.per_domain_plot), args.details)
        + natural_section(metrics, details, read_png(args.tradeoff_plot), args.metrics, args.details)
        + answers_section(test, natural)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>MiniLLM report</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n<h1>MiniLLM report</h1>\n{body}</body>\n</html>\n"
    )


def report(args: argparse.Namespace) -> None:
    utils.write_text(args.output, build_page(args))
    print(f"report: {args.output}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-metrics", default="metrics/train.json")
    parser.add_argument("--loss", default="plots/train_loss.csv")
    parser.add_argument("--metrics", default="metrics/eval.json")
    parser.add_argument("--details", default="metrics/eval_details.json")
    parser.add_argument("--test-answers", default="metrics/test_answers.jsonl")
    parser.add_argument("--natural-answers", default="metrics/natural_answers.jsonl")
    parser.add_argument("--per-domain-plot", default="plots/eval_per_domain.png")
    parser.add_argument("--tradeoff-plot", default="plots/decline_tradeoff.png")
    parser.add_argument("--output", default="reports/index.html")


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, report)
