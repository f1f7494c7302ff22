"""The calibrate stage: how sure may the model be that an answer is right?

    python -m src.calibrate

The check (qa.check) gives each answer its evidence: the model's log-probability of the
article, the share of the question's words its section and its passage's best sentence
recite, whether that sentence fits the answer type (a number for "how many"), and the margin
by which the pick beats the other sections. A hand-made mix of these (qa.pick's confidence)
tells right from wrong answers poorly: most wrong answers name the right article
and share the question's words. So this stage learns the mix from validation questions: the
model answers calibration/natural/ (questions typed the way people type them, each with a
pattern a right answer matches: distinct from the evaluation sets, which only eval reads) and
calibration/out_of_scope.jsonl (never right), and a logistic regression on the evidence
estimates the probability that an answer is right (Platt 1999; Guo et al. 2017, "On
Calibration of Modern Neural Networks"). That probability is the confidence eval and ask.py
compare with eval.min_confidence.

Writes models/calibration.json: the regression's weights, what it was made by (as
recitations.json), and for each threshold what declining below it gives on the validation
questions, with the threshold the rule picks (the lowest that declines CALIBRATION_DECLINED
of the out-of-scope ones). A file made by another checkpoint or other settings is ignored
(the confidence is then qa.pick's own).
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

from src import utils
from src.qa import Calibration, Reply, SourceTrie, answer, answer_settings, load_model
from src.recite import made_by, recitations_beside

FORMAT = "minillm-calibration"
FEATURES = ("article_logprob", "coverage", "sentence_coverage", "fits_answer_type", "margin")  # qa.pick's evidence, in order
THRESHOLDS = [i / 100 for i in range(101)]
CALIBRATION_DECLINED = 0.85  # the threshold rule: decline at least this share of the out-of-scope questions


def fit(evidence: list[tuple[float, ...]], right: list[bool]) -> Calibration | None:
    """Fit the regression (scikit-learn's, L2-regularised, deterministic); None where the
    answers are all right or all wrong (a barely trained model): nothing to learn from."""
    from sklearn.linear_model import LogisticRegression  # only this stage fits: ask.py loads faster without it

    if len(set(right)) < 2:
        return None
    regression = LogisticRegression(C=1.0, max_iter=1000).fit(evidence, right)
    return Calibration([round(float(w), 6) for w in regression.coef_[0]], round(float(regression.intercept_[0]), 6))


# ---------------------------------------------------------------- question sets and outcomes


def read_natural(folder: Path) -> list[dict[str, Any]]:
    """Natural questions, one JSONL file per domain, each with the pattern a right answer matches."""
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


def is_right(answer: str | None, pattern: str) -> bool:
    return answer is not None and re.search(pattern, answer, re.I) is not None


def outcomes(answers: list[str | None], patterns: list[str]) -> dict[str, float]:
    """Shares of right, wrong and declined (None) answers to pattern-checked questions."""
    right = sum(is_right(a, p) for a, p in zip(answers, patterns, strict=True))
    declined = sum(a is None for a in answers)
    n = len(answers)
    return {"accuracy": round(right / n, 4), "wrong": round((n - right - declined) / n, 4), "declined": round(declined / n, 4)}


def given_answers(replies: list[Reply], threshold: float) -> list[str | None]:
    """The answers the model gives, None where it declines."""
    return [r.text if r.confidence >= threshold else None for r in replies]


def declined_share(replies: list[Reply], threshold: float) -> float:
    """The share of replies the model declines: those with a confidence below the threshold."""
    return round(sum(r.confidence < threshold for r in replies) / len(replies), 4)


def validation_rows(natural: list[dict[str, Any]], natural_replies: list[Reply], out_of_scope: list[Reply]) -> list[dict]:
    """For each threshold: the validation questions answered right, wrong, declined."""
    patterns = [q["pattern"] for q in natural]
    rows = []
    for t in THRESHOLDS:
        shares = outcomes(given_answers(natural_replies, t), patterns)
        rows.append(
            {
                "threshold": t,
                "val_right": shares["accuracy"],
                "val_wrong": shares["wrong"],
                "calibration_declined": declined_share(out_of_scope, t),
            }
        )
    return rows


def suggested_threshold(rows: list[dict[str, float]]) -> float:
    """The rule that picks eval.min_confidence, on validation data only: the lowest
    threshold that declines at least CALIBRATION_DECLINED of the out-of-scope questions (it
    keeps the most in-scope answers among those)."""
    return min((r["threshold"] for r in rows if r["calibration_declined"] >= CALIBRATION_DECLINED), default=1.0)


# ---------------------------------------------------------------- the file


def made_for(checkpoint: str | Path, max_new_tokens: int, recital_weight: float) -> dict:
    """What a calibration depends on: the recitations' settings, the check's weight and the
    evidence it weighs."""
    return {**made_by(checkpoint, max_new_tokens), "recital_weight": recital_weight, "features": list(FEATURES)}


def read_calibration(path: str | Path, made: dict) -> tuple[Calibration | None, dict]:
    """The calibration in `path` and the whole file, if it was made as `made` says (a file of
    answers that are not checked holds no calibration: None); (None, {}) if there is no such
    file or it was made otherwise. A file that is not a calibration file
    is a UserError naming it."""
    path = Path(path)
    if not path.exists():
        return None, {}
    data = utils.read_json_file(path, FORMAT)
    if {key: data.get(key) for key in made} != made:
        return None, {}
    weights, bias = data.get("weights"), data.get("bias")
    if weights is None and bias is None:  # answers that are not checked have no evidence to calibrate
        return None, data
    numbers = isinstance(weights, list) and len(weights) == len(FEATURES) and all(type(w) in (int, float) for w in weights)
    if not numbers or type(bias) not in (int, float) or not all(map(math.isfinite, [*weights, bias])):
        raise utils.UserError(f"{path}: keys 'weights' ({len(FEATURES)} numbers) and 'bias' must be finite numbers")
    return Calibration(weights, bias), data


def calibration_beside(checkpoint: str | Path, max_new_tokens: int, recital_weight: float) -> Calibration | None:
    """read_calibration of the calibration.json beside the checkpoint (models/ for the pipeline's)."""
    made = made_for(checkpoint, max_new_tokens, recital_weight)
    return read_calibration(Path(checkpoint).with_name("calibration.json"), made)[0]


# ---------------------------------------------------------------- the stage


def run(args: argparse.Namespace) -> None:
    max_new_tokens, _, recital_weight = answer_settings(args.params)
    natural, out_of_scope = read_natural(Path(args.natural)), read_questions(Path(args.out_of_scope))
    model, tokenizer, sources = load_model(args.checkpoint)
    memory = recitations_beside(args.checkpoint, max_new_tokens)
    questions = [q["question"] for q in natural + out_of_scope]
    replies = answer(model, tokenizer, SourceTrie(tokenizer, sources), questions, max_new_tokens, recital_weight, memory=memory)
    calibration = None
    if replies[0].evidence:  # checked answers (eval.recital_weight > 0, a recitation model): calibrate
        right = [is_right(r.text, q["pattern"]) for r, q in zip(replies, natural)] + [False] * len(out_of_scope)
        calibration = fit([r.evidence for r in replies], right)
    if calibration is not None:
        replies = [calibration.applied(reply) for reply in replies]
    rows = validation_rows(natural, replies[: len(natural)], replies[len(natural) :])
    suggested = suggested_threshold(rows)
    utils.write_json(
        args.output,
        {
            "format": FORMAT,
            **made_for(args.checkpoint, max_new_tokens, recital_weight),
            "weights": calibration.weights if calibration else None,
            "bias": calibration.bias if calibration else None,
            "suggested_min_confidence": suggested,
            "validation": rows,
        },
    )
    if calibration is None:
        print(f"calibrate: nothing to calibrate (answers not checked, or all right or all wrong); min_confidence {suggested}")
        return
    weights = ", ".join(f"{name} {w:+.2f}" for name, w in zip(FEATURES, calibration.weights))
    sizes = f"{len(natural)} + {len(out_of_scope)} questions"
    print(f"calibrate: {sizes}; weights {weights}, bias {calibration.bias:+.2f}; min_confidence {suggested}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--natural", default="calibration/natural")
    parser.add_argument("--out-of-scope", default="calibration/out_of_scope.jsonl")
    parser.add_argument("--checkpoint", default="models/model.pt")
    parser.add_argument("--output", default="models/calibration.json", help="keep it beside the checkpoint: ask.py looks there")


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, run)
