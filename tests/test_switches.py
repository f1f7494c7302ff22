"""The switches experiments/LESSONS.md turns, each in both positions: model.positions (rotary or
learned), train.mask_prompt and train.recitation. The tiny world is trained through the CLI once
with each switch turned (the defaults are conftest's `trained` model), and each test checks that
the switch changes what the model learns or how it is used, not only that the param is read."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ENV, REPO, passages, qa_pairs, run_train, write_params

from src import qa, qa_format, train
from src.model import MiniTransformer, ModelConfig

SWITCHED = {  # name: (section, key, the value that is not the default)
    "learned": ("model", "positions", "learned"),
    "no_mask": ("train", "mask_prompt", False),
    "no_recitation": ("train", "recitation", False),
}
STREAM = {"article_repeats": 1, "index_repeats": 1, "qa_repeats": 1, "qa_answer_tokens": 4}


@pytest.fixture(scope="module")
def checkpoints(trained, tmp_path_factory) -> dict[str, Path]:
    """name -> checkpoint: 'default' is conftest's trained model; the others have one switch turned."""
    world, default, _ = trained

    def train_with(name: str) -> Path:
        folder = tmp_path_factory.mktemp(name)
        params = yaml.safe_load(write_params(folder / "params.yaml").read_text(encoding="utf-8"))
        section, key, value = SWITCHED[name]
        params[section][key] = value
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        result, outputs = run_train(world, folder, folder / "params.yaml")
        assert result.returncode == 0, result.stderr
        return outputs["checkpoint"]

    with ThreadPoolExecutor(max_workers=len(SWITCHED)) as pool:
        return {"default": default["checkpoint"], **dict(zip(SWITCHED, pool.map(train_with, SWITCHED)))}


def load(checkpoints: dict[str, Path], name: str) -> tuple[MiniTransformer, object, qa.SourceTrie]:
    model, tokenizer, sources = qa.load_model(checkpoints[name])
    return model, tokenizer, qa.SourceTrie(tokenizer, sources)


# ---------------------------------------------------------------- model.positions


def test_learned_positions_are_a_table_in_the_checkpoint_and_rotary_ones_are_not(checkpoints):
    rotary, _, _ = load(checkpoints, "default")
    learned, _, _ = load(checkpoints, "learned")
    assert (rotary.config.positions, learned.config.positions) == ("rotary", "learned")
    assert "pos_emb.weight" not in rotary.state_dict() and hasattr(rotary, "cos")
    assert learned.state_dict()["pos_emb.weight"].shape == (96, 64) and not hasattr(learned, "cos")
    assert learned.num_params() == rotary.num_params() + 96 * 64
    state = torch.load(checkpoints["learned"], weights_only=True)
    assert state["config"]["positions"] == "learned"
    trained_table = learned.pos_emb.weight.detach()
    assert trained_table.std() > 0.03  # initialised at std 0.02; training moved it


def test_rotary_positions_see_only_distances_and_learned_ones_where_a_token_sits(checkpoints):
    """The same question and header, moved 10 positions along: the rotary model computes the
    same next-token distribution (up to rounding), the learned one a different one."""
    for name, moved_changes_it in (("default", False), ("learned", True)):
        model, tokenizer, trie = load(checkpoints, name)
        ids = torch.tensor([trie.prompt(tokenizer, "What does the tiger eat?", 96) + trie.ids["Tiger (Diet):"]])
        at_start = model(ids).softmax(-1)
        moved = model(ids, positions=torch.arange(10, 10 + ids.shape[1])).softmax(-1)
        assert (not torch.allclose(at_start, moved, atol=1e-3)) == moved_changes_it, name


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_packed_examples_start_at_position_zero_in_either_way(positions):
    """Training packs several examples in a row; each must be learned as if it had the row to
    itself: with a learned table that means each one's positions count from 0."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, max_seq_len=16, emb_dim=16, num_layers=2, num_heads=2, positions=positions)
    model = MiniTransformer(config)
    first, second = torch.randint(0, 50, (1, 5)), torch.randint(0, 50, (1, 7))
    packed = model(torch.cat([first, second], dim=1), segments=torch.tensor([[0] * 5 + [1] * 7]))
    torch.testing.assert_close(packed[:, :5], model(first), atol=1e-5, rtol=0)
    torch.testing.assert_close(packed[:, 5:], model(second), atol=1e-5, rtol=0)


def test_checkpoints_written_before_the_switches_load_as_rotary_recitation_models(checkpoints, tmp_path):
    state = torch.load(checkpoints["default"], weights_only=True)
    del state["config"]["positions"], state["config"]["recitation"]
    torch.save(state, tmp_path / "old.pt")
    old, tokenizer, sources = qa.load_model(tmp_path / "old.pt")
    assert (old.config.positions, old.config.recitation) == ("rotary", True)
    new, _, trie = load(checkpoints, "default")
    questions = [p["question"] for p in qa_pairs(2)]
    assert qa.answer(old, tokenizer, trie, questions, 30) == qa.answer(new, tokenizer, trie, questions, 30)


# ---------------------------------------------------------------- train.mask_prompt


def test_mask_prompt_decides_whether_the_questions_tokens_are_targets(tok):
    pairs = qa_pairs(0)
    masked = train.build_examples([], pairs, tok, {**STREAM, "mask_prompt": True, "recitation": True}, 97)
    unmasked = train.build_examples([], pairs, tok, {**STREAM, "mask_prompt": False, "recitation": True}, 97)
    assert [ids for ids, _ in masked] == [ids for ids, _ in unmasked]
    for pair, (ids, mask), (_, all_ones) in zip(pairs, masked, unmasked):
        prompt = qa_format.encode_prompt(tok, pair["question"])
        assert mask == [0] * len(prompt) + [1] * (len(ids) - len(prompt))
        assert all_ones == [1] * len(ids)


def question_loss(model: MiniTransformer, tokenizer, questions: list[str]) -> float:
    """Mean cross-entropy of predicting each question's own tokens (and <|answer|>) from its start."""
    losses = []
    for question in questions:
        ids = torch.tensor([qa_format.encode_prompt(tokenizer, question)])
        losses.append(F.cross_entropy(model(ids[:, :-1])[0], ids[0, 1:]).item())
    return sum(losses) / len(losses)


def test_without_the_mask_the_model_learns_its_training_questions_too(checkpoints):
    questions = [p["question"] for p in qa_pairs(0)]
    masked, tokenizer, _ = load(checkpoints, "default")
    unmasked, _, _ = load(checkpoints, "no_mask")
    assert question_loss(unmasked, tokenizer, questions) < 0.5 * question_loss(masked, tokenizer, questions)


def test_the_validation_loss_is_on_answer_tokens_whatever_the_mask(tok):
    """So that runs with and without the mask compare on the same measure."""
    found, pairs = passages(), qa_pairs(1)
    with_mask = train.validation_examples(found, pairs, tok, {**STREAM, "mask_prompt": True, "recitation": True}, 97)
    without = train.validation_examples(found, pairs, tok, {**STREAM, "mask_prompt": False, "recitation": True}, 97)
    assert with_mask == without and any(0 in mask for _, mask in with_mask)


# ---------------------------------------------------------------- train.recitation


def test_without_recitation_qa_pairs_are_learned_whole(tok):
    pairs = qa_pairs(0)
    cut = train.build_examples([], pairs, tok, {**STREAM, "mask_prompt": True, "recitation": True}, 200)
    whole = train.build_examples([], pairs, tok, {**STREAM, "mask_prompt": True, "recitation": False}, 200)
    assert cut == [train.route_example(tok, pair, 200, 4) for pair in pairs]
    assert whole == qa_format.encode_pairs(tok, pairs, 200)
    assert all(ids[-1] == tok.special_id(qa_format.END) and len(ids) > len(short) for (ids, _), (short, _) in zip(whole, cut))


@pytest.mark.parametrize("recitation", [True, False])
def test_answers_continue_after_the_header_alone_or_after_question_and_header(tok, recitation):
    """The same random weights, told either way: the text is what the model continues after
    the header (recitation), or after the question and the header (recitation off)."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tok.vocab_size, max_seq_len=96, emb_dim=32, num_layers=1, num_heads=2, recitation=recitation)
    model = MiniTransformer(config).eval()
    trie = qa.SourceTrie(tok, [qa_format.source_header(p["title"], p["section"]) for p in passages()])
    questions = [p["question"] for p in qa_pairs(0)]
    for question, reply in zip(questions, qa.answer(model, tok, trie, questions, 20)):
        header = trie.ids[reply.source]
        context = header if recitation else trie.prompt(tok, question, 96) + header
        with qa.precision(model):  # as answering runs
            expected = model.generate(context, 20, stop_id=tok.special_id(qa_format.END))
        assert reply.text == tok.decode(expected).strip()
    by_source: dict[str, set[str]] = {}
    for reply in qa.answer(model, tok, trie, questions, 20):
        by_source.setdefault(reply.source, set()).add(reply.text)
    one_text_per_source = all(len(texts) == 1 for texts in by_source.values())
    assert one_text_per_source == recitation  # off: the question, not only the source, decides the text


def test_a_model_trained_without_recitation_says_so_and_answers_its_training_questions(checkpoints):
    model, tokenizer, trie = load(checkpoints, "no_recitation")
    assert model.config.recitation is False and load(checkpoints, "default")[0].config.recitation is True
    pairs = qa_pairs(0)
    replies = qa.answer(model, tokenizer, trie, [p["question"] for p in pairs], 80)
    right = sum(reply.text == pair["answer"] for reply, pair in zip(replies, pairs))
    assert right >= len(pairs) // 2, replies  # learned whole, the answers are recalled after the question


def test_ask_answers_as_the_checkpoint_was_trained(checkpoints, trained):
    world = trained[0]
    question = qa_pairs(0)[0]["question"]
    model, tokenizer, trie = load(checkpoints, "no_recitation")
    (reply,) = qa.answer(model, tokenizer, trie, [question], 80)
    argv = [sys.executable, "src/ask.py", question, "--checkpoint", str(checkpoints["no_recitation"])]
    argv += ["--params", str(world["params"]), "--min-confidence", "0"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{reply.source} {reply.text}"


def test_explain_follows_the_answer_the_checkpoint_gives(checkpoints, trained, tmp_path):
    world = trained[0]
    question = qa_pairs(0)[1]["question"]
    model, tokenizer, trie = load(checkpoints, "no_recitation")
    (reply,) = qa.answer(model, tokenizer, trie, [question], 80)
    argv = [sys.executable, "src/explain.py", question, "--model", str(checkpoints["no_recitation"])]
    argv += ["--params", str(world["params"]), "--out-dir", str(tmp_path)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "the question before it" in result.stdout and f"Answer: {reply.text}\n" in result.stdout
