"""Tests for evaluation: the scores, the retrieval baselines, and real runs of eval.py and ask.py
on a tiny model trained through the CLI (the same one tests/test_train.py trains)."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import baselines
import eval as eval_stage
import qa
import utils
from test_train import ARTICLES, ENV, REPO, qa_pairs, trained_world

METRICS = {"rougeL_f1", "token_f1", "exact_match"}
SYSTEMS = {"model", "closed_book_retrieval", "open_book_retrieval"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_world(tmp_path_factory)


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    """Run eval.py once on the tiny trained model; return (inputs, checkpoint, outputs)."""
    world, model_files, _ = trained
    out = tmp_path_factory.mktemp("eval")
    outputs = {"metrics": out / "eval.json", "answers": out / "answers.jsonl",
               "plot_csv": out / "per_domain.csv", "plot_png": out / "per_domain.png"}
    cmd = [sys.executable, "src/eval.py", "--test", world["test"], "--train", world["train"],
           "--articles", world["articles"], "--checkpoint", model_files["checkpoint"], "--params", world["params"],
           "--metrics", outputs["metrics"], "--answers", outputs["answers"],
           "--plot-csv", outputs["plot_csv"], "--plot-png", outputs["plot_png"]]
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "eval:" in result.stdout
    return world, model_files["checkpoint"], outputs


def run_ask(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "src/ask.py", *map(str, args)], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=60, env=ENV)


# ---------------------------------------------------------------- scores

def test_normalize_drops_case_punctuation_and_articles():
    assert eval_stage.normalize("The Sun's core, a plasma -- AN oven!") == ["suns", "core", "plasma", "oven"]
    assert eval_stage.normalize("  ") == []


def test_token_f1_on_hand_computed_examples():
    assert eval_stage.token_f1("The tiger eats deer.", "tiger eats deer") == 1.0
    assert eval_stage.token_f1("Mars is red.", "Jupiter has moons") == 0.0
    # pred {cat, sat, on, mat}, ref {cat, lay, on, rug}: 2 in common, precision = recall = 1/2
    assert eval_stage.token_f1("the cat sat on a mat", "cat lay on the rug") == pytest.approx(0.5)
    # repeated words count only as often as they occur in both: common = red + blue = 2 of 3 each
    assert eval_stage.token_f1("red red blue", "red blue green") == pytest.approx(2 / 3)
    # precision 1 (1/1), recall 1/4: F1 = 2 * 1 * 0.25 / 1.25
    assert eval_stage.token_f1("moons", "Mars has two moons") == pytest.approx(0.4)
    assert eval_stage.token_f1("", "Mars has two moons") == 0.0


def test_score_exact_disjoint_and_mixed():
    exact = eval_stage.score(["Mars has two moons."], ["mars has two moons"])
    assert exact == {"rougeL_f1": 1.0, "token_f1": 1.0, "exact_match": 1.0}
    disjoint = eval_stage.score(["Jupiter is big"], ["Tigers eat deer"])
    assert disjoint == {"rougeL_f1": 0.0, "token_f1": 0.0, "exact_match": 0.0}
    mixed = eval_stage.score(["Tigers eat deer.", "Jupiter is big"], ["tigers eat deer", "Tigers eat deer"])
    assert mixed == {"rougeL_f1": 0.5, "token_f1": 0.5, "exact_match": 0.5}
    # rouge-L: LCS "mars has moons" = 3 of 4 predicted and 3 of 3 reference words
    partial = eval_stage.score(["mars has two moons"], ["mars has moons"])
    assert partial["rougeL_f1"] == pytest.approx(round(2 * 0.75 * 1 / 1.75, 4))
    assert partial["exact_match"] == 0.0


# ---------------------------------------------------------------- baselines

def test_closed_book_answers_with_the_nearest_training_question():
    train_pairs = qa_pairs(0)
    by_question = {p["question"]: p["answer"] for p in train_pairs}
    answers = baselines.closed_book_answers(train_pairs, ["What food does a tiger eat?", "How many moons does Jupiter have?"])
    assert answers == [by_question["What does the tiger eat?"], by_question["What moons does Jupiter have?"]]


def test_open_book_answers_with_a_2_to_4_sentence_passage_of_the_right_article():
    (passage,) = baselines.open_book_answers(ARTICLES, ["Which leaves do giraffes browse on acacia trees?"])
    diet = next(s["text"] for s in ARTICLES[1]["sections"] if s["heading"] == "Diet")
    assert passage in diet
    assert 2 <= len(utils.split_sentences(passage)) <= 4
    assert "acacia" in passage
    (passage,) = baselines.open_book_answers(ARTICLES, ["Which volcano is the tallest on Mars, Olympus Mons?"])
    surface = next(s["text"] for s in ARTICLES[2]["sections"] if s["heading"] == "Surface")
    assert passage in surface and "Olympus Mons" in passage
    assert 2 <= len(utils.split_sentences(passage)) <= 4


# ---------------------------------------------------------------- eval.py

def test_eval_writes_metrics_for_every_system_and_domain(evaluated):
    world, _, outputs = evaluated
    metrics = json.loads(outputs["metrics"].read_text())
    test = utils.read_jsonl(world["test"])
    assert metrics["num_questions"] == len(test)
    for where in [metrics] + list(metrics["per_domain"].values()):
        assert SYSTEMS <= set(where)
        for system in SYSTEMS:
            assert METRICS <= set(where[system])
            assert all(0.0 <= where[system][m] <= 1.0 for m in METRICS)
        assert {"perplexity", "sentences_2_4", "source_accuracy"} <= set(where["model"])
        assert math.isfinite(where["model"]["perplexity"]) and where["model"]["perplexity"] > 1
        assert 0.0 <= where["model"]["sentences_2_4"] <= 1.0
    assert list(metrics["per_domain"]) == ["astronomy", "animals"]  # the domains present, in utils.DOMAINS order


def test_eval_baseline_scores_match_the_baselines(evaluated):
    world, _, outputs = evaluated
    metrics = json.loads(outputs["metrics"].read_text())
    test, train_pairs = utils.read_jsonl(world["test"]), utils.read_jsonl(world["train"])
    questions, refs = [p["question"] for p in test], [p["answer"] for p in test]
    closed = baselines.closed_book_answers(train_pairs, questions)
    opened = baselines.open_book_answers(ARTICLES, questions)
    assert metrics["closed_book_retrieval"] == eval_stage.score(closed, refs)
    assert metrics["open_book_retrieval"] == eval_stage.score(opened, refs)
    animals = [i for i, p in enumerate(test) if p["domain"] == "animals"]
    assert metrics["per_domain"]["animals"]["open_book_retrieval"] == eval_stage.score(
        [opened[i] for i in animals], [refs[i] for i in animals])
    # the open-book baseline reads the articles, whose sections the references come from
    assert metrics["open_book_retrieval"]["rougeL_f1"] > 0.3


def test_eval_model_answers_and_perplexity_are_the_models(evaluated):
    world, checkpoint, outputs = evaluated
    test = utils.read_jsonl(world["test"])
    rows = utils.read_jsonl(outputs["answers"])
    metrics = json.loads(outputs["metrics"].read_text())
    assert [(r["question"], r["reference"]) for r in rows] == [(p["question"], p["answer"]) for p in test]
    assert all(isinstance(r["generated"], str) for r in rows)

    model, tokenizer = qa.load_model(checkpoint)
    max_new_tokens = utils.load_params("eval", world["params"])["max_new_tokens"]
    replies = [qa.split_source(qa.reply(model, tokenizer, p["question"], max_new_tokens)) for p in test]
    assert [(r["source"], r["generated"]) for r in rows] == replies
    assert [r["reference_source"] for r in rows] == [qa.source_header(p["title"], p["section"]) for p in test]
    right = [r["source"] == r["reference_source"] for r in rows]
    assert metrics["model"]["source_accuracy"] == round(sum(right) / len(right), 4)
    expected = eval_stage.score([r["generated"] for r in rows], [p["answer"] for p in test])
    assert {k: metrics["model"][k] for k in METRICS} == expected

    # perplexity: exp of the mean loss over answer tokens (and their end token), prompt and source
    # header excluded, within the context the model has (longer examples are cut, as in training)
    total, count = 0.0, 0
    max_len = model.config.max_seq_len + 1
    with torch.no_grad():
        for p in test:
            header = qa.source_header(p["title"], p["section"])
            ids, mask = qa.encode_example(tokenizer, p["question"], header, p["answer"])
            prompt_and_header = len(qa.encode_prompt(tokenizer, p["question"]) + tokenizer.encode(header))
            mask = [0] * prompt_and_header + mask[prompt_and_header:]
            ids, mask = ids[:max_len], mask[:max_len]
            logits = model(torch.tensor([ids[:-1]]))[0]
            losses = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
            total += float((losses * torch.tensor(mask[1:], dtype=torch.float)).sum())
            count += sum(mask[1:])
    assert metrics["model"]["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-3)


def test_eval_writes_a_png_and_a_csv_row_per_domain(evaluated):
    _, _, outputs = evaluated
    assert outputs["plot_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outputs["plot_png"].stat().st_size > 1000
    with outputs["plot_csv"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = json.loads(outputs["metrics"].read_text())
    assert [r["domain"] for r in rows] == ["astronomy", "animals"]
    for row in rows:
        assert set(row) == {"domain"} | SYSTEMS
        for system in SYSTEMS:
            assert float(row[system]) == metrics["per_domain"][row["domain"]][system]["rougeL_f1"]


# ---------------------------------------------------------------- ask.py

def test_ask_answers_a_question_from_the_command_line(trained):
    _, model_files, _ = trained
    result = run_ask("--checkpoint", model_files["checkpoint"], "What does the tiger eat?")
    assert result.returncode == 0, result.stderr
    model, tokenizer = qa.load_model(model_files["checkpoint"])
    assert result.stdout == qa.reply(model, tokenizer, "What does the tiger eat?") + "\n"  # greedy by default


def test_ask_reads_questions_from_stdin_until_eof(trained):
    _, model_files, _ = trained
    questions = ["What does the tiger eat?", "What moons does Mars have?"]
    result = run_ask("--checkpoint", model_files["checkpoint"], stdin="\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    model, tokenizer = qa.load_model(model_files["checkpoint"])
    first, second = (qa.reply(model, tokenizer, q) for q in questions)
    intro, _, dialogue = result.stdout.partition("\n")
    assert "question" in intro.lower()
    assert dialogue == f"> {first}\n> {second}\n> "  # one prompt per question, then EOF ends it


def test_ask_with_a_missing_checkpoint_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nope.pt"
    result = run_ask("--checkpoint", missing, "What is a comet?")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0] and "not found" in lines[0]
    assert result.stdout == ""
