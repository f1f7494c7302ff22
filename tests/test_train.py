"""Tests for training: the loss, the schedule, the Q&A format, passages, and real CLI runs.

The tiny world (articles, passages, Q&A splits, tokenizer, a small params.yaml) and the model
trained on it through the CLI are in tests/conftest.py, shared with tests/test_eval.py.
"""

import csv
import json
import math
import re
from dataclasses import fields
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import headers, passages, qa_pairs, run_train, tiny_tokenizer, write_params
from hypothesis import given, settings
from hypothesis import strategies as st

from src import qa, qa_format, train, utils
from src.model import ModelConfig
from src.tokenizer import ANSWER, QUESTION

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
    assert all(b > a for a, b in pairwise(lrs))


def test_lr_cosine_decays_to_min_lr_and_is_monotonic_after_warmup():
    lrs = [train.lr_at(step, SCHEDULE) for step in range(10, 131)]
    assert lrs[0] == pytest.approx(1e-3)  # the decay starts at the peak
    assert all(b <= a for a, b in pairwise(lrs))
    assert train.lr_at(55, SCHEDULE) == pytest.approx((1e-3 + 1e-4) / 2)  # half-way: the mean
    assert train.lr_at(100, SCHEDULE) == pytest.approx(1e-4)
    assert train.lr_at(130, SCHEDULE) == pytest.approx(1e-4)  # stays at min_lr past max_steps
    assert train.lr_at(32, SCHEDULE) == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 22 / 90)))


# ---------------------------------------------------------------- Q&A format


def test_encode_example_masks_the_prompt_and_trains_on_source_answer_and_end(tok):
    question, answer = "What does the tiger eat?", "Tigers are carnivores. They hunt deer."
    ids, mask = qa_format.encode_example(tok, question, "Tiger (Diet):", answer)
    # The model reads the question normalized: lower case, no punctuation, single spaces.
    q_ids, s_ids, a_ids = tok.encode(" what does the tiger eat"), tok.encode("Tiger (Diet):"), tok.encode(" " + answer)
    prompt = [tok.special_id(QUESTION)] + q_ids + [tok.special_id(ANSWER)]
    assert qa_format.encode_prompt(tok, "  WHAT does the Tiger eat?? ") == prompt
    assert ids == prompt + s_ids + a_ids + [tok.special_id(qa_format.END)]
    assert mask == [0] * len(prompt) + [1] * (len(s_ids) + len(a_ids) + 1)
    assert tok.decode(ids) == f"<|question|> what does the tiger eat<|answer|>Tiger (Diet): {answer}<|endoftext|>"


def test_split_source_separates_the_header_from_the_answer():
    assert qa_format.split_source("Tiger (Diet): Tigers hunt deer (and pigs): mostly.") == (
        "Tiger (Diet):",
        "Tigers hunt deer (and pigs): mostly.",
    )
    assert qa_format.split_source(" Tigers hunt deer. ") == ("", "Tigers hunt deer.")
    header = qa_format.source_header("Mercury (planet)", "Orbit")
    assert qa_format.split_source(f"{header} It is fast.") == (header, "It is fast.")


def test_to_batch_shifts_targets_and_pads(tok):
    short = qa_format.encode_example(tok, "Why?", "A (B):", "Because.")
    long_ = qa_format.encode_example(tok, "What is Mars?", "Mars (Lead):", "A planet. It is red.")
    pad = tok.special_id(qa_format.END)
    inputs, targets, mask = qa_format.to_batch([short, long_], pad, "cpu")
    assert inputs.shape == targets.shape == mask.shape == (2, len(long_[0]) - 1)
    assert inputs[1].tolist() == long_[0][:-1] and targets[1].tolist() == long_[0][1:]
    assert mask[1].tolist() == long_[1][1:]
    n = len(short[0]) - 1
    assert targets[0, :n].tolist() == short[0][1:]
    assert (mask[0, n:] == 0).all() and (inputs[0, n:] == pad).all()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 16), max_size=60), st.integers(16, 40))
def test_pack_rows_puts_every_example_once_in_order_within_the_width(lengths, width):
    rows = train.pack_rows(lengths, width)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(row == sorted(row) and sum(lengths[i] for i in row) <= width for row in rows)
    # best fit never opens a row while an earlier one could take the example: rows stay few
    assert len(rows) <= 2 * sum(lengths) // width + 1


def test_packed_batch_holds_each_example_as_to_batch_would(tok):
    examples = [qa_format.encode_example(tok, q, "A (B):", "Because it is.") for q in ("Why?", "What is Mars?", "How?")]
    pad = tok.special_id(qa_format.END)
    width = len(examples[0][0]) + len(examples[1][0])  # room for the first two and 2 padding tokens
    inputs, targets, mask, segments = train.packed_batch([examples[:2], examples[2:]], width, pad, "cpu")
    assert inputs.shape == targets.shape == mask.shape == segments.shape == (2, width)
    start = 0
    for segment, example in enumerate(examples[:2]):
        alone_inputs, alone_targets, alone_mask = qa_format.to_batch([example], pad, "cpu")
        end = start + alone_inputs.shape[1]
        assert inputs[0, start:end].tolist() == alone_inputs[0].tolist()
        assert targets[0, start:end].tolist() == alone_targets[0].tolist()
        assert mask[0, start:end].tolist() == alone_mask[0].tolist()
        assert (segments[0, start:end] == segment).all()
        start = end
    assert (segments[0, start:] == -1).all() and (mask[0, start:] == 0).all()


def test_a_packed_batch_gives_the_loss_of_the_same_examples_padded(tok):
    """Packing changes where an example sits, not what the model computes on it."""
    from src.model import MiniTransformer

    torch.manual_seed(0)
    model = MiniTransformer(ModelConfig(vocab_size=tok.vocab_size, max_seq_len=128, emb_dim=32, num_layers=2, num_heads=2))
    examples = [
        qa_format.encode_example(tok, q, "Tiger (Diet):", "Tigers hunt.") for q in ("Why?", "What do tigers eat?", "Food?")
    ]
    pad = tok.special_id(qa_format.END)
    inputs, targets, mask = qa_format.to_batch(examples, pad, "cpu")
    padded = train.masked_loss(model(inputs), targets, mask)
    inputs, targets, mask, segments = train.packed_batch(train.pack(examples, 128), 128, pad, "cpu")
    assert inputs.shape[0] < len(examples)  # some share a row
    packed = train.masked_loss(model(inputs, segments=segments), targets, mask)
    torch.testing.assert_close(packed, padded)
    unmasked = train.masked_loss(model(inputs), targets, mask)
    assert abs(float((unmasked - padded).detach())) > 1e-4  # without segments the examples would see each other


def test_batch_loss_computing_logits_only_where_learned_equals_masked_loss(tok):
    """The optimisation beside the plain version: the same loss and the same gradients."""
    from src.model import MiniTransformer

    torch.manual_seed(0)
    model = MiniTransformer(ModelConfig(vocab_size=tok.vocab_size, max_seq_len=64, emb_dim=32, num_layers=2, num_heads=2))
    examples = [
        qa_format.encode_example(tok, q, "Tiger (Diet):", "Tigers hunt.") for q in ("Why?", "What do tigers eat?", "Food?")
    ]
    batch = train.packed_batch(train.pack(examples, 64), 64, tok.special_id(qa_format.END), "cpu")
    inputs, targets, mask, segments = batch
    assert 0 < mask.sum() < mask.numel()  # prompts and padding are left out
    plain = train.masked_loss(model(inputs, segments=segments), targets, mask)
    plain_grads = torch.autograd.grad(plain, list(model.parameters()))
    fast = train.batch_loss(model, batch)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    torch.testing.assert_close(fast, plain)
    for got, expected in zip(fast_grads, plain_grads):
        torch.testing.assert_close(got, expected)
    empty = (inputs, targets, torch.zeros_like(mask), segments)
    assert float(train.batch_loss(model, empty).detach()) == 0.0  # no learned token: 0, not NaN


# ---------------------------------------------------------------- passages


def test_the_tiny_worlds_passages_are_what_generate_writes():
    found = passages()
    assert all(set(p) == {"id", "domain", "title", "section", "text"} for p in found)
    assert len({p["id"] for p in found}) == len(found)
    tiger = [p["section"] for p in found if p["title"] == "Tiger"]
    assert tiger == ["Lead", "Diet", "Diet, part 2", "Habitat", "Habitat, part 2"]  # the lead has only two sentences
    assert headers()[:3] == ["Tiger (Lead):", "Tiger (Diet):", "Tiger (Diet, part 2):"]


def test_passage_example_is_header_text_and_end_with_loss_on_every_token(tok):
    passage = next(p for p in passages() if p["section"] == "Diet, part 2" and p["title"] == "Giraffe")
    ids, mask = train.passage_example(tok, passage, 200)
    assert ids == tok.encode("Giraffe (Diet, part 2):") + tok.encode(" " + passage["text"]) + [tok.special_id(qa_format.END)]
    assert mask == [1] * len(ids)
    assert tok.decode(ids) == "Giraffe (Diet, part 2): They drink water rarely.<|endoftext|>"


def test_passage_example_is_cut_to_max_len_with_the_end_token_last(tok):
    passage = passages()[1]
    full, _ = train.passage_example(tok, passage, 1000)
    end = tok.special_id(qa_format.END)
    assert end not in full[:-1] and full[-1] == end
    assert train.passage_example(tok, passage, len(full)) == (full, [1] * len(full))  # just fits: unchanged
    for max_len in (len(full) - 1, 12, 2):
        ids, mask = train.passage_example(tok, passage, max_len)
        assert len(ids) == len(mask) == max_len
        assert ids[:-1] == full[: max_len - 1] and ids[-1] == end
        assert mask == [1] * max_len


def test_an_answers_target_is_its_passage_example_after_the_header(tok):
    """What recitation rests on: once the model has named a source, the answer it was
    trained to give is token for token the passage it learned under that header."""
    by_source = {(p["title"], p["section"]): p for p in passages()}
    for pair in qa_pairs(0) + qa_pairs(2):
        passage = by_source[(pair["title"], pair["section"])]
        example, _ = train.passage_example(tok, passage, 200)
        ids, mask = qa_format.encode_pairs(tok, [pair], 200)[0]
        target = ids[mask.index(1) :]
        header = tok.encode(qa_format.source_header(pair["title"], pair["section"]))
        assert target[: len(header)] == example[: len(header)] == header
        assert target[len(header) :] == example[len(header) :]


def test_build_examples_repeats_passages_and_pairs_as_the_params_say(tok):
    found, pairs = passages(), qa_pairs(0)
    rest = {"qa_answer_tokens": 16, "mask_prompt": True, "recitation": True}
    repeats = {"article_repeats": 3, "qa_repeats": 2, "index_repeats": 2}
    examples = train.build_examples(found, pairs, tok, {**repeats, **rest}, 65)
    index = [e for passage in found for e in train.index_examples(tok, passage, 65)]
    assert len(examples) == 3 * len(found) + 2 * len(pairs) + 2 * len(index)
    for passage in found:
        assert examples.count(train.passage_example(tok, passage, 65)) == 3
    for pair in pairs:
        assert examples.count(train.route_example(tok, pair, 65, 16)) == 2
    assert all(examples.count(example) >= 2 for example in index)
    assert all(len(ids) <= 65 for ids, _ in examples)
    none = train.build_examples(found, pairs, tok, {"article_repeats": 0, "qa_repeats": 1, "index_repeats": 0, **rest}, 65)
    assert none == [train.route_example(tok, pair, 65, 16) for pair in pairs]


def test_index_examples_lead_each_sentence_of_a_passage_to_its_header(tok):
    """'<|question|> <a sentence, read as a question> <|answer|>Title (Section):', loss on the header only."""
    passage = passages()[0]
    header = tok.encode(qa_format.source_header(passage["title"], passage["section"]))
    sentences = utils.split_sentences(passage["text"])
    examples = train.index_examples(tok, passage, 200)
    assert len(examples) == len(sentences) >= 2
    for sentence, (ids, mask) in zip(sentences, examples):
        prompt = qa_format.encode_prompt(tok, sentence)
        assert ids == prompt + header  # nothing of the text after the header
        assert mask == [0] * len(prompt) + [1] * len(header)


def test_route_example_stops_a_few_tokens_after_the_header(tok):
    pair = qa_pairs(0)[0]
    ((full_ids, full_mask),) = qa_format.encode_pairs(tok, [pair], 200)
    header = tok.encode(qa_format.source_header(pair["title"], pair["section"]))
    for answer_tokens in (0, 3):
        ids, mask = train.route_example(tok, pair, 200, answer_tokens)
        start = full_mask.index(1)
        assert ids == full_ids[: start + len(header) + answer_tokens] and mask == full_mask[: len(ids)]
        assert ids[start : start + len(header)] == header


# ---------------------------------------------------------------- params


def write_model_params(path: Path, **model_overrides) -> Path:
    """The tiny world's params.yaml with some model keys changed."""
    params = yaml.safe_load(write_params(path).read_text(encoding="utf-8"))
    params["model"].update(model_overrides)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def test_the_model_section_has_every_model_config_field_but_the_tokenizers_vocab_size_and_trains_recitation():
    assert list(train.MODEL_KEYS) == [f.name for f in fields(ModelConfig) if f.name not in ("vocab_size", "recitation")]
    assert list(train.MODEL_KEYS.items()) == [
        ("max_seq_len", int),
        ("emb_dim", int),
        ("num_layers", int),
        ("num_heads", int),
        ("dropout", float),
        ("positions", str),
    ]


def test_read_params_reads_each_section_once_and_checks_the_model_shape(tmp_path, monkeypatch):
    read = []
    load_params = utils.load_params
    monkeypatch.setattr(
        utils, "load_params", lambda section, path, known: read.append(section) or load_params(section, path, known)
    )
    params, config = train.read_params(str(write_params(tmp_path / "params.yaml")))
    assert sorted(read) == ["model", "train"]
    assert params["batch_size"] == 8 and params["bf16"] is False
    assert (config.max_seq_len, config.emb_dim, config.num_layers, config.num_heads) == (96, 64, 2, 2)
    assert isinstance(config.dropout, float)


def test_emb_dim_not_divisible_by_num_heads_is_a_user_error_naming_the_model_section(tmp_path):
    path = write_model_params(tmp_path / "params.yaml", emb_dim=64, num_heads=3)
    with pytest.raises(utils.UserError, match=r"params\.yaml: model: emb_dim \(64\) must be divisible by num_heads \(3\)"):
        train.read_params(str(path))


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "emb_dim", -16, "emb_dim must be at least 1"),
        ("model", "num_heads", 0, "num_heads must be at least 1"),
        ("model", "num_layers", -1, "num_layers must be at least 1"),
        ("model", "max_seq_len", 0, "max_seq_len must be at least 1"),
        ("model", "dropout", 1.5, "dropout must be in [0, 1)"),
        ("model", "emb_dim", 6, "into an even number of channels per head"),
        ("train", "batch_size", 0, "'batch_size' must be at least 1"),
        ("train", "eval_interval", 0, "'eval_interval' must be at least 1"),
        ("train", "max_steps", 0, "'max_steps' must be at least 1"),
        ("train", "lr", -1, "'lr' must be at least 0"),
        ("train", "lr", float("nan"), "'lr' must be a finite number"),
        ("train", "grad_clip", float("inf"), "'grad_clip' must be a finite number"),
    ],
)
def test_a_bad_value_is_a_user_error_naming_section_and_key(tmp_path, section, key, value, message):
    path = write_params(tmp_path / "params.yaml")
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    if (section, key) == ("model", "emb_dim") and value == 6:
        params["model"]["num_heads"] = 2  # 3 channels a head: divisible, but odd
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(utils.UserError, match=rf"params\.yaml: {section}: .*{re.escape(message)}"):
        train.read_params(str(path))


def test_a_model_key_of_the_wrong_type_is_a_user_error(tmp_path):
    path = write_model_params(tmp_path / "params.yaml", num_layers=2.5)
    with pytest.raises(utils.UserError, match=r"model: key 'num_layers' must be int"):
        train.read_params(str(path))


# ---------------------------------------------------------------- the CLI


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_training_run_lowers_the_loss_and_writes_outputs(trained):
    world, outputs, result = trained
    rows = read_csv(outputs["plot"])
    assert [int(r["step"]) for r in rows] == [100, 200, 300]
    train_losses = [float(r["train_loss"]) for r in rows]
    val_losses = [float(r["val_loss"]) for r in rows]
    assert train_losses[-1] < train_losses[0] - 0.5, train_losses
    assert train_losses[0] < math.log(300)  # the first 100 steps already beat uniform guessing
    assert all(math.isfinite(v) for v in val_losses)

    metrics = json.loads(outputs["metrics"].read_text())
    assert set(metrics) == {"best_val_loss", "final_train_loss", "steps", "num_params"}
    assert metrics["steps"] == 300
    assert metrics["best_val_loss"] == pytest.approx(min(val_losses), abs=1e-5)
    assert metrics["final_train_loss"] == pytest.approx(train_losses[-1], abs=1e-5)
    assert "train:" in result.stdout


def test_the_trained_model_recites_the_passages_of_its_training_questions(trained):
    """Training teaches the format end to end: asked a training question, the model names a
    learned source and recites that passage word for word (most of the time, at this size)."""
    _, outputs, _ = trained
    model, tokenizer, sources = qa.load_model(outputs["checkpoint"])
    pairs = qa_pairs(0)
    replies = qa.answer(model, tokenizer, qa.SourceTrie(tokenizer, sources), [p["question"] for p in pairs], 80)
    text_of = {qa_format.source_header(p["title"], p["section"]): p["text"] for p in passages()}
    recited = [
        r.source == qa_format.source_header(p["title"], p["section"]) and r.text == text_of[r.source]
        for r, p in zip(replies, pairs, strict=True)
    ]
    assert sum(recited) >= len(pairs) // 2, replies


def test_checkpoint_loads_weights_only_and_answers(trained):
    world, outputs, _ = trained
    state = torch.load(outputs["checkpoint"], weights_only=True)  # no pickled code in it
    rows = read_csv(outputs["plot"])
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert state["step"] == int(best["step"])  # the kept checkpoint is the best-validation one
    assert state["config"]["emb_dim"] == 64 and state["config"]["vocab_size"] == 300
    assert state["sources"] == headers()  # every passage's header, in passages.jsonl order

    model, tokenizer, sources = qa.load_model(outputs["checkpoint"])
    assert sources == headers()
    assert not model.training
    assert model.num_params() == json.loads(outputs["metrics"].read_text())["num_params"]
    assert tokenizer.merges == tiny_tokenizer().merges
    (reply,) = qa.answer(model, tokenizer, qa.SourceTrie(tokenizer, sources), ["What does the tiger eat?"], max_new_tokens=20)
    assert reply.source in sources
    assert 0.0 < reply.confidence <= 1.0
    assert reply.text
    # no budget for text: the same source (named before the budget applies), and no text
    (short,) = qa.answer(model, tokenizer, qa.SourceTrie(tokenizer, sources), ["What does the tiger eat?"], max_new_tokens=0)
    assert (short.source, short.text) == (reply.source, "")
    assert short.confidence == pytest.approx(reply.confidence, abs=1e-6)


def test_training_is_deterministic_for_a_seed(trained, tmp_path):
    world, _, _ = trained
    params = write_params(tmp_path / "params.yaml", max_steps=20, eval_interval=10)
    (first, a), (second, b) = (run_train(world, tmp_path / name, params) for name in ("a", "b"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for key in ("metrics", "plot", "checkpoint"):
        assert a[key].read_bytes() == b[key].read_bytes(), key


def test_missing_train_param_is_a_one_line_error_and_writes_nothing(trained, tmp_path):
    world, _, _ = trained
    params = write_params(tmp_path / "params.yaml", drop_train_key="lr")
    result, outputs = run_train(world, tmp_path / "out", params)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "train" in lines[0] and "'lr'" in lines[0]
    assert not outputs["checkpoint"].exists() and not outputs["metrics"].exists() and not outputs["plot"].exists()


def test_a_bad_model_shape_is_a_one_line_error_and_writes_nothing(trained, tmp_path):
    world, _, _ = trained
    params = write_model_params(tmp_path / "params.yaml", num_heads=5)
    result, outputs = run_train(world, tmp_path / "out", params)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{params}: model: emb_dim (64) must be divisible by num_heads (5)" in lines[0]
    assert not outputs["checkpoint"].exists() and not outputs["metrics"].exists() and not outputs["plot"].exists()


def test_a_passage_without_a_section_is_a_one_line_error_naming_the_line(trained, tmp_path):
    world, _, _ = trained
    broken = passages()
    del broken[2]["section"]
    bad = tmp_path / "passages.jsonl"
    bad.write_text("".join(json.dumps(p) + "\n" for p in broken), encoding="utf-8")
    result, outputs = run_train({**world, "passages": bad}, tmp_path / "out")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{bad}:3" in lines[0] and "'section'" in lines[0]
    assert not outputs["checkpoint"].exists()
