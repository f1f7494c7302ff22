"""Tests for training: the loss, the schedule, the Q&A format, article chunks, and real CLI runs.

The helpers at the top build a tiny world in a temp folder (articles, Q&A splits, a tokenizer,
a small params.yaml) and train on it through the CLI; tests/test_eval.py reuses them.
"""
import csv
import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

import qa
import train
import utils
from tokenizer import Tokenizer

REPO = Path(__file__).resolve().parent.parent
# One thread per process: on a busy 2-core machine, OpenMP threads contending for the cores make
# these tiny models ~100x slower. Numerics and determinism do not depend on it.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------- a tiny world

ARTICLES = [
    {"id": "tiger", "title": "Tiger", "domain": "animals", "url": "https://en.wikipedia.org/wiki/Tiger",
     "lead": "The tiger is the largest living cat species. It has orange fur with black stripes.",
     "sections": [
         {"heading": "Diet", "text": "Tigers are carnivores that hunt deer and wild boar. "
                                     "They ambush prey at night. A tiger can eat forty kilograms of meat in one meal."},
         {"heading": "Habitat", "text": "Tigers live in forests and grasslands of Asia. "
                                        "They need water and dense cover. Most wild tigers live in India."}]},
    {"id": "giraffe", "title": "Giraffe", "domain": "animals", "url": "https://en.wikipedia.org/wiki/Giraffe",
     "lead": "The giraffe is the tallest living land animal. It has a very long neck and legs.",
     "sections": [
         {"heading": "Diet", "text": "Giraffes browse on the leaves of acacia trees. "
                                     "Their long tongues strip leaves from thorny branches. They drink water rarely."},
         {"heading": "Habitat", "text": "Giraffes live in savannas and open woodlands of Africa. "
                                        "They avoid dense forest. Herds roam over large ranges."}]},
    {"id": "mars", "title": "Mars", "domain": "astronomy", "url": "https://en.wikipedia.org/wiki/Mars",
     "lead": "Mars is the fourth planet from the Sun. It is often called the Red Planet.",
     "sections": [
         {"heading": "Moons", "text": "Mars has two small moons named Phobos and Deimos. "
                                      "Both moons are irregular in shape. They may be captured asteroids."},
         {"heading": "Surface", "text": "The surface of Mars is covered in red iron oxide dust. "
                                        "Olympus Mons is the tallest volcano on Mars. Valles Marineris is a huge canyon."}]},
    {"id": "jupiter", "title": "Jupiter", "domain": "astronomy", "url": "https://en.wikipedia.org/wiki/Jupiter",
     "lead": "Jupiter is the largest planet in the Solar System. It is a gas giant made mostly of hydrogen.",
     "sections": [
         {"heading": "Moons", "text": "Jupiter has ninety five known moons. "
                                      "The four largest are the Galilean moons. Ganymede is bigger than Mercury."},
         {"heading": "Atmosphere", "text": "The Great Red Spot is a giant storm on Jupiter. "
                                           "Bands of clouds circle the planet. Winds reach six hundred kilometres per hour."}]},
]

QUESTIONS = {  # (article id, heading) -> (train question, val question, test question)
    ("tiger", "Diet"): ("What does the tiger eat?", "What food does the tiger hunt?", "Which prey do tigers hunt for food?"),
    ("tiger", "Habitat"): ("Where does the tiger live?", "What habitat does the tiger need?", "In which forests and grasslands do tigers live?"),
    ("giraffe", "Diet"): ("What does the giraffe eat?", "What food does the giraffe browse?", "Which leaves do giraffes browse?"),
    ("giraffe", "Habitat"): ("Where does the giraffe live?", "What habitat does the giraffe need?", "In which savannas do giraffes live?"),
    ("mars", "Moons"): ("What moons does Mars have?", "How many moons orbit Mars?", "What are the names of the moons of Mars?"),
    ("mars", "Surface"): ("What is the surface of Mars like?", "What covers the surface of Mars?", "Which volcano is on the surface of Mars?"),
    ("jupiter", "Moons"): ("What moons does Jupiter have?", "How many moons orbit Jupiter?", "Which are the largest moons of Jupiter?"),
    ("jupiter", "Atmosphere"): ("What is the atmosphere of Jupiter like?", "What storms are on Jupiter?", "What is the Great Red Spot on Jupiter?"),
}


def qa_pairs(which: int) -> list[dict]:
    """which: 0 train, 1 val, 2 test. The answer is the first two sentences of the section."""
    by_id = {a["id"]: a for a in ARTICLES}
    pairs = []
    for (article_id, heading), questions in QUESTIONS.items():
        article = by_id[article_id]
        text = next(s["text"] for s in article["sections"] if s["heading"] == heading)
        pairs.append({
            "id": f"{article_id}-{heading}-{which}", "fact_id": f"{article_id}-{heading}", "domain": article["domain"],
            "title": article["title"], "section": heading, "question": questions[which],
            "answer": " ".join(utils.split_sentences(text)[:2]),
        })
    return pairs


def all_texts() -> list[str]:
    texts = []
    for a in ARTICLES:
        texts += [a["title"], a["lead"]] + [s["heading"] + " " + s["text"] for s in a["sections"]]
    texts += [p["question"] + " " + p["answer"] for which in range(3) for p in qa_pairs(which)]
    return texts


def tiny_tokenizer() -> Tokenizer:
    return Tokenizer.train(all_texts(), 300)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_params(path: Path, drop_train_key: str | None = None, **train_overrides) -> Path:
    """params.yaml with the real file's sections, shrunk to a model and run that take seconds."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["model"] = {"max_seq_len": 64, "emb_dim": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.0}
    params["train"].update({"seed": 7, "max_steps": 30, "batch_size": 8, "lr": 3.0e-3, "min_lr": 3.0e-4,
                            "warmup_steps": 5, "eval_interval": 10, "eval_batches": 2, "bf16": False})
    params["train"].update(train_overrides)
    if drop_train_key:
        del params["train"][drop_train_key]
    params["eval"] = {"max_new_tokens": 24}
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def make_world(root: Path) -> dict[str, Path]:
    """Write the tiny inputs under `root`; return the paths train.py and eval.py take."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "articles": write_jsonl(root / "articles.jsonl", ARTICLES),
        "train": write_jsonl(root / "train.jsonl", qa_pairs(0)),
        "val": write_jsonl(root / "val.jsonl", qa_pairs(1)),
        "test": write_jsonl(root / "test.jsonl", qa_pairs(2)),
        "tokenizer": root / "tokenizer.json",
        "params": write_params(root / "params.yaml"),
    }
    tiny_tokenizer().save(paths["tokenizer"])
    return paths


def run_train(world: dict[str, Path], out: Path, params: Path | None = None) -> tuple[subprocess.CompletedProcess, dict[str, Path]]:
    outputs = {"checkpoint": out / "model.pt", "metrics": out / "train.json", "plot": out / "train_loss.csv"}
    cmd = [sys.executable, "src/train.py", "--articles", world["articles"], "--train", world["train"],
           "--val", world["val"], "--tokenizer", world["tokenizer"], "--checkpoint", outputs["checkpoint"],
           "--metrics", outputs["metrics"], "--plot", outputs["plot"], "--params", params or world["params"]]
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV)
    return result, outputs


_TRAINED: dict = {}


def trained_world(tmp_path_factory) -> tuple[dict[str, Path], dict[str, Path], subprocess.CompletedProcess]:
    """Train once per test session (shared with test_eval.py): (inputs, outputs, train result)."""
    if not _TRAINED:
        world = make_world(tmp_path_factory.mktemp("world"))
        result, outputs = run_train(world, tmp_path_factory.mktemp("trained"))
        assert result.returncode == 0, result.stderr
        _TRAINED.update(world=world, outputs=outputs, result=result)
    return _TRAINED["world"], _TRAINED["outputs"], _TRAINED["result"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return trained_world(tmp_path_factory)


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


# ---------------------------------------------------------------- masked_loss

def test_masked_loss_with_empty_mask_is_zero_with_finite_gradients():
    logits = torch.randn(2, 5, 11, requires_grad=True)
    targets = torch.randint(0, 11, (2, 5))
    loss = train.masked_loss(logits, targets, torch.zeros(2, 5))
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad == 0).all()


def test_masked_loss_with_full_mask_is_plain_cross_entropy():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 7, 13), torch.randint(0, 13, (3, 7))
    expected = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    torch.testing.assert_close(train.masked_loss(logits, targets, torch.ones(3, 7)), expected)


def test_masked_loss_is_the_mean_over_masked_positions_only():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 6, 9), torch.randint(0, 9, (2, 6))
    mask = torch.tensor([[0, 0, 1, 1, 0, 1], [0, 1, 0, 0, 0, 0]], dtype=torch.float)
    loss = train.masked_loss(logits, targets, mask)
    picked = mask.bool()
    expected = F.cross_entropy(logits[picked], targets[picked])
    torch.testing.assert_close(loss, expected)
    # changing logits or targets where the mask is 0 changes nothing ...
    other_logits, other_targets = logits.clone(), targets.clone()
    other_logits[~picked] = torch.randn_like(other_logits[~picked]) * 10
    other_targets[~picked] = (other_targets[~picked] + 1) % 9
    torch.testing.assert_close(train.masked_loss(other_logits, other_targets, mask), loss)
    # ... and where it is 1, it does
    other_logits[0, 2] += torch.randn(9) * 10
    assert not torch.isclose(train.masked_loss(other_logits, targets, mask), loss)
    # and no gradient reaches the unmasked positions
    leaf = logits.clone().requires_grad_(True)
    train.masked_loss(leaf, targets, mask).backward()
    assert (leaf.grad[~picked] == 0).all() and (leaf.grad[picked] != 0).any()


# ---------------------------------------------------------------- lr schedule

SCHEDULE = {"lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10, "max_steps": 100}


def test_lr_warmup_rises_linearly_to_lr():
    lrs = [train.lr_at(step, SCHEDULE) for step in range(10)]
    for step, lr in enumerate(lrs):
        assert lr == pytest.approx(1e-3 * (step + 1) / 10)
    assert lrs[-1] == pytest.approx(1e-3)
    assert all(b > a for a, b in zip(lrs, lrs[1:]))


def test_lr_cosine_decays_to_min_lr_and_is_monotonic_after_warmup():
    lrs = [train.lr_at(step, SCHEDULE) for step in range(10, 131)]
    assert lrs[0] == pytest.approx(1e-3)  # the decay starts at the peak
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert train.lr_at(55, SCHEDULE) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way: the mean
    assert train.lr_at(100, SCHEDULE) == pytest.approx(1e-4)
    assert train.lr_at(130, SCHEDULE) == pytest.approx(1e-4)  # stays at min_lr past max_steps
    assert train.lr_at(32, SCHEDULE) == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 22 / 90)))


# ---------------------------------------------------------------- Q&A format and chunks

def test_encode_example_masks_the_prompt_and_trains_on_source_answer_and_end(tok):
    question, answer = "What does the tiger eat?", "Tigers are carnivores. They hunt deer."
    ids, mask = qa.encode_example(tok, question, "Tiger (Diet):", answer)
    q_ids, s_ids, a_ids = tok.encode(" " + question), tok.encode("Tiger (Diet):"), tok.encode(" " + answer)
    prompt = [tok.special_id(qa.QUESTION)] + q_ids + [tok.special_id(qa.ANSWER)]
    assert qa.encode_prompt(tok, "  " + question + " ") == prompt
    assert ids == prompt + s_ids + a_ids + [tok.special_id(qa.END)]
    assert mask == [0] * len(prompt) + [1] * (len(s_ids) + len(a_ids) + 1)
    assert tok.decode(ids) == f"<|question|> {question}<|answer|>Tiger (Diet): {answer}<|endoftext|>"


def test_an_answer_starts_with_the_same_tokens_as_its_sections_first_article_chunk(tok):
    """What recitation rests on: after the source header, answer and article text agree."""
    text = ARTICLES[0]["sections"][0]["text"]
    article = {"title": ARTICLES[0]["title"], "lead": ARTICLES[0]["lead"], "sections": [ARTICLES[0]["sections"][0]]}
    first_chunk = train.article_chunks(article, tok, 200, None)[1][0]
    pair = {"question": "Any question?", "title": article["title"], "section": article["sections"][0]["heading"],
            "answer": " ".join(utils.split_sentences(text)[:2])}
    ids, mask = qa.encode_pairs(tok, [pair], 200)[0]
    target = ids[mask.index(1):-1]
    assert first_chunk[:len(target)] == target


def test_split_source_separates_the_header_from_the_answer():
    assert qa.split_source("Tiger (Diet): Tigers hunt deer (and pigs): mostly.") == ("Tiger (Diet):", "Tigers hunt deer (and pigs): mostly.")
    assert qa.split_source(" Tigers hunt deer. ") == ("", "Tigers hunt deer.")
    header = qa.source_header("Mercury (planet)", "Orbit")
    assert qa.split_source(f"{header} It is fast.") == (header, "It is fast.")


def test_to_batch_shifts_targets_and_pads(tok):
    short, long_ = qa.encode_example(tok, "Why?", "A (B):", "Because."), qa.encode_example(tok, "What is Mars?", "Mars (Lead):", "A planet. It is red.")
    pad = tok.special_id(qa.END)
    inputs, targets, mask = qa.to_batch([short, long_], pad, "cpu")
    assert inputs.shape == targets.shape == mask.shape == (2, len(long_[0]) - 1)
    assert inputs[1].tolist() == long_[0][:-1] and targets[1].tolist() == long_[0][1:]
    assert mask[1].tolist() == long_[1][1:]
    n = len(short[0]) - 1
    assert targets[0, :n].tolist() == short[0][1:]
    assert (mask[0, n:] == 0).all() and (inputs[0, n:] == pad).all()


def chunk_article() -> dict:
    """Many sentences the tiny tokenizer knows, each well within the context."""
    animals = " ".join(t for a in ARTICLES[:2] for t in [a["lead"]] + [s["text"] for s in a["sections"]])
    planets = " ".join(t for a in ARTICLES[2:] for t in [a["lead"]] + [s["text"] for s in a["sections"]])
    return {"title": "Mars", "lead": animals, "sections": [{"heading": "Moons", "text": planets}]}


def test_article_chunks_fit_carry_headers_and_end_and_keep_every_sentence(tok):
    article = chunk_article()
    end = tok.special_id(qa.END)
    # room for the longer header, the longest sentence, the end token, and a few tokens more
    longest = max(len(tok.encode(" " + s)) for part in (article["lead"], article["sections"][0]["text"])
                  for s in utils.split_sentences(part))
    max_len = max(len(tok.encode(f"Mars ({h}, continued):")) for h in ("Lead", "Moons")) + longest + 1 + 8
    chunks = train.article_chunks(article, tok, max_len, None)
    by_part = {}
    for ids, mask in chunks:
        assert len(ids) <= max_len
        assert mask == [1] * len(ids)
        assert ids[-1] == end and end not in ids[:-1]
        for heading in ("Lead", "Moons"):
            # only a part's first chunk has the plain header; later ones say "continued"
            first = heading not in by_part
            header = tok.encode(f"Mars ({heading}):" if first else f"Mars ({heading}, continued):")
            if ids[:len(header)] == header:
                by_part.setdefault(heading, []).append(tok.decode(ids[len(header):-1]))
                break
        else:
            pytest.fail(f"chunk without its title/section header: {tok.decode(ids)!r}")
    assert len(by_part["Lead"]) > 1 and len(by_part["Moons"]) > 1  # the parts really were cut
    # in order, the chunks of each part hold exactly its sentences, none cut in half
    assert "".join(by_part["Lead"]) == " " + " ".join(utils.split_sentences(article["lead"]))
    assert "".join(by_part["Moons"]) == " " + " ".join(utils.split_sentences(article["sections"][0]["text"]))


def test_article_chunks_never_exceed_max_len_even_for_a_sentence_longer_than_the_context(tok):
    long_sentence = "Mars " + " ".join(["has red dust and tall volcanoes"] * 15) + "."
    article = {"title": "Mars", "lead": f"Mars is a planet. {long_sentence} Mars has two moons.", "sections": []}
    max_len = 32
    chunks = train.article_chunks(article, tok, max_len, None)
    assert len(tok.encode(" " + long_sentence)) > max_len
    assert all(len(ids) <= max_len for ids, _ in chunks)
    assert all(ids[-1] == tok.special_id(qa.END) for ids, _ in chunks)
    text = "".join(tok.decode(ids) for ids, _ in chunks)
    assert "Mars is a planet." in text and "Mars has two moons." in text


def test_article_chunks_with_shuffle_are_seeded_and_keep_the_sentences(tok):
    article, max_len = chunk_article(), 64
    plain = train.article_chunks(article, tok, max_len, None)
    one = train.article_chunks(article, tok, max_len, random.Random(3))
    assert train.article_chunks(article, tok, max_len, random.Random(3)) == one
    assert one != plain
    def words(chunks):
        bodies = [re.sub(r"^Mars \((Lead|Moons)(, continued)?\):", "", tok.decode(ids[:-1])) for ids, _ in chunks]
        return sorted(w for body in bodies for w in body.split())

    assert words(one) == words(plain)  # the same sentences, in another order


# ---------------------------------------------------------------- the CLI

def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_training_run_lowers_the_loss_and_writes_outputs(trained):
    world, outputs, result = trained
    rows = read_csv(outputs["plot"])
    assert [int(r["step"]) for r in rows] == [10, 20, 30]
    train_losses = [float(r["train_loss"]) for r in rows]
    val_losses = [float(r["val_loss"]) for r in rows]
    assert train_losses[-1] < train_losses[0] - 0.5, train_losses
    assert train_losses[0] < math.log(300)  # the first 10 steps already beat uniform guessing
    assert all(math.isfinite(v) for v in val_losses)

    metrics = json.loads(outputs["metrics"].read_text())
    assert set(metrics) == {"best_val_loss", "final_train_loss", "steps", "num_params"}
    assert metrics["steps"] == 30
    assert metrics["best_val_loss"] == pytest.approx(min(val_losses), abs=1e-5)
    assert metrics["final_train_loss"] == pytest.approx(train_losses[-1], abs=1e-5)
    assert "train:" in result.stdout


def test_checkpoint_loads_weights_only_and_answers(trained):
    world, outputs, _ = trained
    state = torch.load(outputs["checkpoint"], weights_only=True)  # no pickled code in it
    rows = read_csv(outputs["plot"])
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert state["step"] == int(best["step"])  # the kept checkpoint is the best-validation one
    assert state["config"]["emb_dim"] == 32 and state["config"]["vocab_size"] == 300

    model, tokenizer = qa.load_model(outputs["checkpoint"])
    assert not model.training
    assert model.num_params() == json.loads(outputs["metrics"].read_text())["num_params"]
    assert tokenizer.merges == tiny_tokenizer().merges
    reply = qa.reply(model, tokenizer, "What does the tiger eat?", max_new_tokens=20)
    assert isinstance(reply, str)
    assert len(tokenizer.encode(reply)) <= 20


def test_training_is_deterministic_for_a_seed(trained, tmp_path):
    world, first, _ = trained
    result, second = run_train(world, tmp_path)
    assert result.returncode == 0, result.stderr
    assert second["metrics"].read_bytes() == first["metrics"].read_bytes()
    assert second["plot"].read_bytes() == first["plot"].read_bytes()


def test_missing_train_param_is_a_one_line_error_and_writes_nothing(trained, tmp_path):
    world, _, _ = trained
    params = write_params(tmp_path / "params.yaml", drop_train_key="lr")
    result, outputs = run_train(world, tmp_path / "out", params)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "train" in lines[0] and "'lr'" in lines[0]
    assert not outputs["checkpoint"].exists() and not outputs["metrics"].exists() and not outputs["plot"].exists()
