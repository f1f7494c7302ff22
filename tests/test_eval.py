"""Tests for evaluation: the scores, the retrieval baselines, answering through the source
trie (qa.answer, qa.closest_sources), and real runs of evaluate.py and ask.py on the tiny model
trained through the CLI (tests/conftest.py, shared with tests/test_train.py)."""

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import (
    ARTICLES,
    CALIBRATION,
    CALIBRATION_NATURAL,
    ENV,
    MIN_CONFIDENCE,
    NATURAL,
    OUT_OF_SCOPE,
    REPO,
    TITLES,
    headers,
    qa_pairs,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from src import baselines, calibrate, qa, qa_format, utils, verify
from src import evaluate as eval_stage
from src.model import MiniTransformer, ModelConfig
from src.recite import recitations_beside

METRICS = {"rougeL_f1", "token_f1", "exact_match"}
SYSTEMS = {"model", "closed_book_retrieval", "open_book_retrieval"}
MAX_NEW_TOKENS = 80  # conftest.write_params: eval.max_new_tokens
RECITAL_WEIGHT = yaml.safe_load((REPO / "params.yaml").read_text())["eval"]["recital_weight"]  # the real file's, in conftest too


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    """Run evaluate.py once on the tiny trained model; return (inputs, checkpoint, outputs)."""
    world, model_files, _ = trained
    out = tmp_path_factory.mktemp("eval")
    outputs = {
        "metrics": out / "eval.json",
        "details": out / "eval_details.json",
        "answers": out / "answers",
        "plots": out / "plots",
        "calibration": out / "calibration.json",
    }
    calibrate = [sys.executable, "-m", "src.calibrate", "--checkpoint", model_files["checkpoint"]]
    calibrate += ["--natural", world["calibration_natural"], "--out-of-scope", world["calibration"]]
    calibrate += ["--output", outputs["calibration"], "--params", world["params"]]
    result = subprocess.run([str(c) for c in calibrate], cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    cmd = [
        sys.executable,
        "-m",
        "src.evaluate",
        "--test",
        world["test"],
        "--train",
        world["train"],
        "--articles",
        world["articles"],
        "--natural",
        world["natural"],
        "--out-of-scope",
        world["out_of_scope"],
        "--calibration",
        outputs["calibration"],
        "--checkpoint",
        model_files["checkpoint"],
        "--metrics",
        outputs["metrics"],
        "--details",
        outputs["details"],
        "--answers-dir",
        outputs["answers"],
        "--plots",
        outputs["plots"],
        "--params",
        world["params"],
    ]
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "eval:" in result.stdout
    return world, model_files["checkpoint"], outputs


@pytest.fixture(scope="module")
def loaded(trained):
    """The tiny trained model, its tokenizer, and the trie of its sources."""
    _, model_files, _ = trained
    model, tokenizer, sources = qa.load_model(model_files["checkpoint"])
    return model, tokenizer, qa.SourceTrie(tokenizer, sources)


@pytest.fixture(scope="module")
def untrained(tok):
    """A seeded random model over the tiny tokenizer: it knows nothing."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tok.vocab_size, max_seq_len=96, emb_dim=32, num_layers=1, num_heads=2, dropout=0.0)
    return MiniTransformer(config).eval()


def run_ask(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "src/ask.py", *map(str, args)],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )


def declined(replies: list[qa.Reply]) -> float:
    """The share of replies below the tiny world's eval.min_confidence, as the outputs round it."""
    return round(sum(r.confidence < MIN_CONFIDENCE for r in replies) / len(replies), 4)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@torch.no_grad()
def header_logprob(model, tokenizer, trie: qa.SourceTrie, question: str, source: str) -> float:
    """By hand, with one full forward pass (no KV cache) in the precision answering uses: the
    sum over the header's tokens of log p(token) renormalised over the tokens the trie allows
    at that point."""
    prompt, tokens = qa_format.encode_prompt(tokenizer, question), tokenizer.encode(source)
    with qa.precision(model):
        logprobs = model(torch.tensor([prompt + tokens[:-1]]))[0].float().log_softmax(-1)
    node, total = trie.root, 0.0
    for j, token in enumerate(tokens):
        allowed = qa.SourceTrie.allowed(node)
        row = logprobs[len(prompt) - 1 + j]
        total += float(row[token] - torch.logsumexp(row[allowed], dim=0))
        node = node[token]
    assert None in node
    return total


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


# ---------------------------------------------------------------- outcomes, faithfulness, same questions


def test_outcomes_count_right_wrong_and_declined():
    answers = ["Tigers hunt DEER at night.", None, "Mars is red.", "Phobos and Deimos", None, "It eats leaves."]
    patterns = [r"deer|boar", r"acacia", r"moons", r"phobos", r"storm", r"acacia"]
    # right: 1 (case-insensitive), 4; declined: 2, 5; wrong: 3, 6
    assert eval_stage.outcomes(answers, patterns) == {"accuracy": 0.3333, "wrong": 0.3333, "declined": 0.3333}
    assert eval_stage.outcomes([None, None], ["a", "b"]) == {"accuracy": 0.0, "wrong": 0.0, "declined": 1.0}
    assert eval_stage.outcomes(["the sun", "a moon"], [r"\bsun\b", r"^a moo"]) == {"accuracy": 1.0, "wrong": 0.0, "declined": 0.0}
    # an empty answer is given, not declined: it is wrong unless the pattern matches nothing
    assert eval_stage.outcomes([""], ["deer"]) == {"accuracy": 0.0, "wrong": 1.0, "declined": 0.0}


def test_the_model_declines_below_the_threshold_and_answers_at_or_above_it():
    replies = [
        qa.Reply("Tiger (Diet):", "Tigers hunt deer.", 0.3),
        qa.Reply("Mars (Moons):", "Phobos and Deimos.", 0.5),
        qa.Reply("Giraffe (Diet):", "Acacia leaves.", 0.9),
    ]
    assert eval_stage.given_answers(replies, 0.5) == [None, "Phobos and Deimos.", "Acacia leaves."]
    assert eval_stage.given_answers(replies, 0.0) == [r.text for r in replies]
    assert eval_stage.declined_share(replies, 0.5) == 0.3333
    assert eval_stage.declined_share(replies, 0.0) == 0.0
    assert eval_stage.declined_share(replies, 1.01) == 1.0


def test_ask_together_asks_once_and_cuts_the_results_back_per_set():
    calls = []

    def ask(questions: list[str]) -> list[str]:
        calls.append(questions)
        return [q.upper() for q in questions]

    first, empty, last = [{"question": "a"}, {"question": "b"}], [], [{"question": "c"}]
    assert eval_stage.ask_together(ask, first, empty, last) == [["A", "B"], [], ["C"]]
    assert calls == [["a", "b", "c"]]


def test_article_sentences_are_every_sentence_of_the_lead_and_sections_in_order():
    assert eval_stage.article_sentences(ARTICLES[:1]) == [
        "The tiger is the largest living cat species.",
        "It has orange fur with black stripes.",
        "Tigers are carnivores that hunt deer and wild boar.",
        "They ambush prey at night.",
        "A tiger can eat forty kilograms of meat in one meal.",
        "Tigers live in forests and grasslands of Asia.",
        "They need water and dense cover.",
        "Most wild tigers live in India.",
    ]
    assert len(eval_stage.article_sentences(ARTICLES)) == 4 * 8
    assert eval_stage.article_sentences([]) == []


def test_faithful_share_counts_recited_sentences_not_invented_ones():
    sentences = eval_stage.article_sentences(ARTICLES)
    verbatim = "Tigers are carnivores that hunt deer and wild boar."
    invented = "Penguins sing loudly to the frozen moon every winter evening."
    assert eval_stage.faithful_share([verbatim], sentences) == 1.0
    assert eval_stage.faithful_share([invented], sentences) == 0.0
    # sentence by sentence, across answers: 2 of the 3 sentences are recited
    assert eval_stage.faithful_share(
        [f"{verbatim} {invented}", "Mars has two small moons named Phobos and Deimos."], sentences
    ) == pytest.approx(0.6667)
    # the answer names the right words in a garbled order: not a recitation
    assert eval_stage.faithful_share(["Boar and deer hunt carnivores that are wild tigers."], sentences) == 0.0
    assert eval_stage.faithful_share([], sentences) == 1.0  # nothing said, nothing invented


def test_same_question_share_ignores_case_punctuation_and_articles():
    train_questions = ["What does the tiger eat?", "Where does the giraffe live?"]
    asked = ["what does the TIGER eat", "Where does a giraffe live!?", "What does the lion eat?", "Where do tigers live?"]
    assert eval_stage.same_question_share(asked, train_questions) == 0.5
    assert eval_stage.same_question_share(["What does the tiger eat"], train_questions) == 1.0
    assert eval_stage.same_question_share(["Tiger eat?"], train_questions) == 0.0


def test_nearest_k_orders_candidates_by_similarity():
    candidates = ["tigers hunt deer", "giraffes browse acacia leaves", "mars has two moons", "tigers eat deer and boar"]
    (best,) = baselines.nearest_k(candidates, ["what deer do tigers hunt"], 3)
    assert best[:2] == [0, 3] and len(best) == 3 and len(set(best)) == 3
    assert baselines.nearest(candidates, ["acacia leaves", "moons of mars"]) == [1, 2]


def test_reply_shown_answers_or_declines_naming_the_closest_topics():
    reply = qa.Reply("Tiger (Diet):", "Tigers hunt deer.", 0.4)
    assert reply.shown(0.4, ["Lion"]) == "Tiger (Diet): Tigers hunt deer."
    assert reply.shown(0.41, ["Tiger", "Mars"]) == "I don't know. The closest topics I know are: Tiger, Mars."
    assert reply.shown(0.41, []) == "I don't know. The closest topics I know are: none."


# ---------------------------------------------------------------- the source trie and answering


def test_source_trie_holds_every_header_and_ends_at_its_index(tok):
    sources = headers()
    trie = qa.SourceTrie(tok, sources)
    for index, source in enumerate(sources):
        node = trie.root
        for token in tok.encode(source):
            assert token in qa.SourceTrie.allowed(node)
            node = node[token]
        assert node[None] == index
    # the allowed first tokens are exactly the headers' first tokens; a proper prefix ends nowhere
    assert sorted(qa.SourceTrie.allowed(trie.root)) == sorted({tok.encode(s)[0] for s in sources})
    node = trie.root
    for token in tok.encode("Tiger (Diet"):
        node = node[token]
    assert None not in node
    # a header that is not a source is not in the trie
    node, tokens = trie.root, tok.encode("Tiger (Moons):")
    for token in tokens:
        if token not in node:
            break
        node = node[token]
    else:
        assert None not in node


def test_answer_names_a_learned_source_even_for_an_untrained_model_and_nonsense(untrained, tok):
    sources = headers()
    trie = qa.SourceTrie(tok, sources)
    questions = [
        "What does the tiger eat?",
        "zzqx vvv kkkk",
        "",
        "?!?!",
        "Qu'est-ce que c'est ?",
        "1234 5678",
        "How many moons orbit Mars?",
    ]
    replies = qa.answer(untrained, tok, trie, questions, max_new_tokens=40)
    assert len(replies) == len(questions)
    for reply in replies:
        assert reply.source in sources
        assert 0.0 <= reply.confidence <= 1.0
        assert isinstance(reply.text, str)
    # with no knowledge, the probability spreads over many sources
    assert all(r.confidence < 0.5 for r in replies)


def test_answer_on_the_trained_model_names_a_learned_source_for_out_of_scope_questions(loaded):
    model, tokenizer, trie = loaded
    for reply in qa.answer(model, tokenizer, trie, OUT_OF_SCOPE + CALIBRATION + ["", "xkcd qwerty"], MAX_NEW_TOKENS):
        assert reply.source in headers()
        assert 0.0 < reply.confidence <= 1.0


def test_batched_answers_are_the_one_at_a_time_answers(loaded):
    model, tokenizer, trie = loaded
    questions = [
        "What does the tiger eat?",
        "Mars?",
        "Where does the tiger live?",
        "What does the giraffe eat?",
        "Which prey do tigers hunt for food?",
        "How many moons orbit Mars?",
        "names of the two moons of mars?",
        "Where does the giraffe live?",
        "What is the Great Red Spot on Jupiter?",
        "What does the lion eat?",
        "How many moons orbit Jupiter?",
        "In which forests and grasslands do tigers live?",
    ]
    lengths = [len(qa_format.encode_prompt(tokenizer, q)) for q in questions]
    # prompts of many lengths, some shared, padded together in one batch or paired in batches of two
    assert len(set(lengths)) >= 6 and max(map(lengths.count, lengths)) >= 2
    for weight in (0.0, RECITAL_WEIGHT):  # naming alone, and checked by recitation
        together = qa.answer(model, tokenizer, trie, questions, MAX_NEW_TOKENS, weight, batch_size=64)
        in_twos = qa.answer(model, tokenizer, trie, questions, MAX_NEW_TOKENS, weight, batch_size=2)
        for q, batched, paired in zip(questions, together, in_twos):
            (alone,) = qa.answer(model, tokenizer, trie, [q], MAX_NEW_TOKENS, weight)
            for other in (batched, paired):
                assert (other.source, other.text) == (alone.source, alone.text), q
                assert other.confidence == pytest.approx(alone.confidence, abs=1e-5)


def test_confidence_is_the_product_of_renormalised_header_token_probabilities(loaded, tok):
    model, tokenizer, _ = loaded
    sources = ["Tiger (Diet):", "Tiger (Habitat):", "Tiger (Diet, part 2):", "Mars (Moons):", "Giraffe (Lead):"]
    trie = qa.SourceTrie(tokenizer, sources)
    question = "What does the tiger eat?"
    (reply,) = qa.answer(model, tokenizer, trie, [question], MAX_NEW_TOKENS)
    # greedy by hand: at each step the allowed token with the highest renormalised probability
    prompt, node, chosen, total = qa_format.encode_prompt(tokenizer, question), trie.root, [], 0.0
    with torch.no_grad():
        while None not in node:
            with qa.precision(model):
                logits = model(torch.tensor([prompt + chosen]))[0, -1].float()
            allowed = qa.SourceTrie.allowed(node)
            logprobs = logits.log_softmax(-1)[allowed] - torch.logsumexp(logits.log_softmax(-1)[allowed], dim=0)
            best = int(logprobs.argmax())
            total += float(logprobs[best])
            chosen.append(allowed[best])
            node = node[allowed[best]]
    assert reply.source == sources[node[None]] == tokenizer.decode(chosen)
    assert reply.confidence == pytest.approx(math.exp(total), abs=1e-5)
    assert reply.confidence == pytest.approx(math.exp(header_logprob(model, tokenizer, trie, question, reply.source)), abs=1e-5)
    # one source: every step has a single allowed token, so the model is certain of it
    (only,) = qa.answer(model, tokenizer, qa.SourceTrie(tokenizer, ["Mars (Moons):"]), [question], MAX_NEW_TOKENS)
    assert only.source == "Mars (Moons):" and only.confidence == 1.0


def test_source_logprobs_are_the_header_logprobs_by_hand(loaded):
    model, tokenizer, trie = loaded
    pairs = [(q, s) for q in ("What does the tiger eat?", "Mars?", "How many moons orbit Jupiter?") for s in headers()[:5]]
    sequences = [trie.prompt(tokenizer, q, model.config.max_seq_len) + trie.ids[s] for q, s in pairs]
    for batch_size in (64, 4):  # padded together, of many lengths
        scored = qa.source_logprobs(model, trie, sequences, batch_size)
        by_hand = [header_logprob(model, tokenizer, trie, q, s) for q, s in pairs]
        assert scored == pytest.approx(by_hand, abs=1e-4)


def test_a_header_tree_scores_each_header_as_source_logprobs_does_alone(loaded):
    """tree_logprobs: one row per question, the headers' shared beginnings computed once."""
    model, tokenizer, trie = loaded
    questions = ("What does the tiger eat?", "Mars?", "How many moons orbit Jupiter?")
    groups = [headers()[:5], headers()[3:9], headers()[:1]]
    prompts = [trie.prompt(tokenizer, q, model.config.max_seq_len) for q in questions]
    trees = [qa.HeaderTree.build(prompt, [trie.ids[s] for s in group]) for prompt, group in zip(prompts, groups)]
    one_by_one = [prompt + trie.ids[s] for prompt, group in zip(prompts, groups) for s in group]
    assert sum(len(tree) for tree in trees) < sum(len(sequence) for sequence in one_by_one)
    alone = qa.source_logprobs(model, trie, one_by_one)
    for batch_size in (64, 2):  # padded together, of many lengths
        together = [lp for logprobs in qa.tree_logprobs(model, trie, trees, batch_size) for lp in logprobs]
        assert together == pytest.approx(alone, abs=1e-4)


def test_trie_logprobs_of_many_headers_at_once_are_each_ones_trie_logprob(loaded):
    model, _, trie = loaded
    header_ids = [trie.ids[source] for source in headers()] * 2
    vocab_size = model.config.vocab_size
    logits = torch.randn(sum(len(h) for h in header_ids), vocab_size, generator=torch.Generator().manual_seed(0)) * 5
    one_by_one = [qa.trie_logprob(trie, rows, h) for rows, h in zip(logits.split([len(h) for h in header_ids]), header_ids)]
    assert qa.trie_logprobs(trie, logits, header_ids) == pytest.approx(one_by_one, abs=1e-5)
    assert qa.trie_logprobs(trie, logits[: len(header_ids[0])], header_ids[:1]) == pytest.approx(one_by_one[:1], abs=1e-5)


def score_by_hand(c: qa.Candidate, recital_weight: float) -> float:
    recited = recital_weight * (c.coverage + c.sentence_coverage)
    return (c.logprob + c.section_logprob) / 2 + recited + 8.0 * c.fits_answer_type


def test_coverage_weighs_a_word_by_how_rare_it_is_among_the_recited_sentences():
    recited = verify.Recitations(
        {
            "Lion (Habitat):": "Lions live in grassland. Lions live in open woodland.",
            "Lion (Habitat, part 2):": "A separate population of Asiatic lions survives in India.",
            "Lion (Diet):": "Lions live on meat.",
        }
    )
    question = "Where do Asiatic lions live?"  # each passage's best sentence has two of its three words
    _, part_1, _ = recited.coverage(question, "Lion (Habitat):")
    _, part_2, _ = recited.coverage(question, "Lion (Habitat, part 2):")
    assert part_2 > part_1  # "asiatic" (in one sentence of four) outweighs "live" (in three)
    assert recited.best_covered(question) == "Lion (Habitat, part 2):"  # the best sentence, not the section
    # a word the model never recites weighs most: two of three words covered is less than 2/3
    section, sentence, _ = recited.coverage("Where do glorp lions live?", "Lion (Habitat):")
    assert section == sentence < 2 / 3
    assert recited.coverage("Where do lions live?", "Lion (Habitat):")[:2] == (1.0, 1.0)
    # a misspelt word counts as the recited word one edit away, a word of under five letters does not
    misspelt = "Where do Asaitic lions live?"
    assert recited.coverage(misspelt, "Lion (Habitat, part 2):") == recited.coverage(question, "Lion (Habitat, part 2):")
    assert recited.coverage("Where do lions lve?", "Lion (Habitat):")[:2] < (1.0, 1.0)


def test_check_picks_among_the_named_and_the_best_covered_article_by_score(loaded):
    model, tokenizer, trie = loaded
    questions = ["What does the tiger eat?", "Where do tigers live?", "How many moons orbit Mars?", "What does a glorp eat?"]
    named = qa.name(model, tokenizer, trie, questions)
    memory: dict[str, str] = {}
    groups = qa.candidates(model, tokenizer, trie, questions, memory, MAX_NEW_TOKENS)
    assert set(memory) == set(headers())  # the model recited every source it knows
    recited = verify.Recitations(memory)
    for question, reply, group in zip(questions, named, groups):
        best_covered = max(headers(), key=lambda h: recited.coverage(question, h)[1])  # the first on a tie
        assert recited.best_covered(question) == best_covered
        articles = {qa_format.source_title(reply.source), qa_format.source_title(best_covered)}
        assert {c.source for c in group} == {h for h in headers() if qa_format.source_title(h) in articles}
        (plain,) = qa.answer(model, tokenizer, trie, [question], MAX_NEW_TOKENS)  # named, not checked
        assert plain.source == reply.source and memory[reply.source] == plain.text  # the greedy recitation
        assert [(c.coverage, c.sentence_coverage, c.fits_answer_type) for c in group] == [
            recited.coverage(question, c.source) for c in group
        ]
        for c in group:  # a section's probability: the sum of its parts'
            parts = [math.exp(p.logprob) for p in group if verify.section_of(p.source) == verify.section_of(c.source)]
            assert math.exp(c.section_logprob) == pytest.approx(sum(parts), rel=1e-6)
        for weight in (0.0, 1.0, 1e6):
            (checked,) = qa.check(model, tokenizer, trie, [question], weight, memory, MAX_NEW_TOKENS)
            best = max(group, key=lambda c: score_by_hand(c, weight))
            article = sum(
                math.exp(c.logprob) for c in group if qa_format.source_title(c.source) == qa_format.source_title(best.source)
            )
            assert checked.source == best.source
            assert checked.confidence == pytest.approx(math.sqrt(min(1.0, article)) * best.coverage, abs=1e-6)
            others = [c for c in group if verify.section_of(c.source) != verify.section_of(best.source)]
            margin = score_by_hand(best, weight) - max(score_by_hand(c, weight) for c in others)
            assert checked.evidence[4] == pytest.approx(margin, abs=1e-6) and margin >= 0
        (by_coverage,) = qa.check(model, tokenizer, trie, [question], 1e6, memory, MAX_NEW_TOKENS)
        assert by_coverage.source in [c.source for c in group if c.coverage == max(c.coverage for c in group)]


def test_closest_sources_with_width_one_is_the_greedy_source(loaded):
    model, tokenizer, trie = loaded
    questions = [p["question"] for p in qa_pairs(1)][:4] + OUT_OF_SCOPE[:2]
    for question, reply in zip(questions, qa.answer(model, tokenizer, trie, questions, 30)):
        assert qa.closest_sources(model, tokenizer, trie, question, width=1) == [reply.source]


def test_closest_sources_agree_with_greedy_when_sources_differ_from_the_first_token(loaded):
    """With distinct first tokens and one path each after it, the only choice is the first
    token: beam search of any width and greedy decoding must agree, and rank by it."""
    model, tokenizer, _ = loaded
    sources = ["Tiger (Diet):", "Mars (Moons):", "Giraffe (Lead):", "Jupiter (Atmosphere):"]
    assert len({tokenizer.encode(s)[0] for s in sources}) == len(sources)
    trie = qa.SourceTrie(tokenizer, sources)
    for question in ["What does the tiger eat?", "What storms are on Jupiter?", "Who wrote War and Peace?"]:
        (reply,) = qa.answer(model, tokenizer, trie, [question], 30)
        by_hand = sorted(sources, key=lambda s: -header_logprob(model, tokenizer, trie, question, s))
        for width in (1, 2, 4):
            closest = qa.closest_sources(model, tokenizer, trie, question, width)
            assert closest[0] == reply.source
            assert closest == by_hand[:width]


def test_closest_sources_are_distinct_valid_ranked_and_exhaustive_when_wide_enough(loaded):
    model, tokenizer, trie = loaded
    sources = headers()
    for question in ["How many moons orbit Jupiter?", "What habitat does the giraffe need?", OUT_OF_SCOPE[0]]:
        (reply,) = qa.answer(model, tokenizer, trie, [question], 30)
        greedy = header_logprob(model, tokenizer, trie, question, reply.source)
        assert math.exp(greedy) == pytest.approx(reply.confidence, abs=1e-5)
        for width in (2, 5):
            closest = qa.closest_sources(model, tokenizer, trie, question, width)
            assert len(closest) == width and len(set(closest)) == width and set(closest) <= set(sources)
            scores = [header_logprob(model, tokenizer, trie, question, s) for s in closest]
            assert all(a >= b - 1e-5 for a, b in zip(scores, scores[1:]))  # likeliest first
        # a beam as wide as the trie is exhaustive: every source, ranked by its probability,
        # so its best is at least as likely as the greedy choice
        everything = qa.closest_sources(model, tokenizer, trie, question, width=len(sources))
        assert sorted(everything) == sorted(sources)
        ranked = [header_logprob(model, tokenizer, trie, question, s) for s in everything]
        assert all(a >= b - 1e-5 for a, b in zip(ranked, ranked[1:]))
        assert ranked[0] >= greedy - 1e-5
    # fewer sources than the width: all of them
    small = qa.SourceTrie(tokenizer, sources[:3])
    assert sorted(qa.closest_sources(model, tokenizer, small, "What does the tiger eat?", width=5)) == sorted(sources[:3])


# ---------------------------------------------------------------- evaluate.py


def model_replies(evaluated, loaded) -> tuple[list[qa.Reply], list[qa.Reply], list[qa.Reply]]:
    """The model's replies to the test, natural and out-of-scope questions, asked as evaluate.py
    asks them (calibrated by the calibrate stage's file)."""
    world, checkpoint, outputs = evaluated
    model, tokenizer, trie = loaded
    made = calibrate.made_for(checkpoint, MAX_NEW_TOKENS, RECITAL_WEIGHT)
    calibration, _ = calibrate.read_calibration(outputs["calibration"], made)
    test = utils.read_jsonl(world["test"])
    asked = [p["question"] for p in test] + [q["question"] for q in NATURAL] + OUT_OF_SCOPE
    replies = qa.answer(model, tokenizer, trie, asked, MAX_NEW_TOKENS, RECITAL_WEIGHT, calibration=calibration)
    return replies[: len(test)], replies[len(test) : len(test) + len(NATURAL)], replies[len(test) + len(NATURAL) :]


def test_eval_writes_every_section_of_the_metrics(evaluated):
    _, _, outputs = evaluated
    metrics = json.loads(outputs["metrics"].read_text())
    assert set(metrics) == SYSTEMS | {"natural", "out_of_scope", "num_questions"}
    assert metrics["num_questions"] == {"test": 8, "natural": len(NATURAL), "out_of_scope": len(OUT_OF_SCOPE)}
    for system in SYSTEMS:
        assert set(metrics[system]) >= METRICS
        assert all(0.0 <= metrics[system][m] <= 1.0 for m in METRICS)
    model = metrics["model"]
    assert {"perplexity", "sentences_2_4", "source_accuracy", "declined", "faithful", "invented_sources"} <= set(model)
    assert math.isfinite(model["perplexity"]) and model["perplexity"] > 1
    assert all(0.0 <= model[k] <= 1.0 for k in ("sentences_2_4", "source_accuracy", "declined", "faithful"))
    assert model["invented_sources"] == 0  # the trie lets it name only learned sources
    for system in SYSTEMS:
        natural = metrics["natural"][system]
        assert set(natural) == {"accuracy", "wrong", "declined"}
        assert natural["accuracy"] + natural["wrong"] + natural["declined"] == pytest.approx(1.0, abs=2e-4)
        assert set(metrics["out_of_scope"][system]) == {"declined", "answered"}
    for system in SYSTEMS - {"model"}:  # retrieval always answers
        assert metrics["natural"][system]["declined"] == 0.0
        assert metrics["out_of_scope"][system] == {"declined": 0.0, "answered": 1.0}
    # one natural question is a training question in other case and punctuation
    assert metrics["natural"]["same_as_training_question"] == round(1 / len(NATURAL), 4)


def test_eval_test_answers_and_scores_are_the_models(evaluated, loaded):
    world, _, outputs = evaluated
    model, tokenizer, _ = loaded
    test = utils.read_jsonl(world["test"])
    rows = utils.read_jsonl(outputs["answers"] / "test_answers.jsonl")
    metrics = json.loads(outputs["metrics"].read_text())
    replies, natural_replies, _ = model_replies(evaluated, loaded)
    assert [(r["domain"], r["question"], r["reference"]) for r in rows] == [
        (p["domain"], p["question"], p["answer"]) for p in test
    ]
    assert [(r["source"], r["generated"]) for r in rows] == [(r.source, r.text) for r in replies]
    assert [r["confidence"] for r in rows] == pytest.approx([round(r.confidence, 4) for r in replies], abs=1e-4)
    assert [r["reference_source"] for r in rows] == [qa_format.source_header(p["title"], p["section"]) for p in test]
    right = [r["source"] == r["reference_source"] for r in rows]
    assert metrics["model"]["source_accuracy"] == round(sum(right) / len(right), 4)
    assert metrics["model"]["declined"] == declined(replies)
    expected = eval_stage.score([r["generated"] for r in rows], [p["answer"] for p in test])
    assert {k: metrics["model"][k] for k in METRICS} == expected
    # faithful: over the answers the model gives (test and natural, above the threshold)
    answered = [r.text for r in replies + natural_replies if r.confidence >= MIN_CONFIDENCE]
    assert metrics["model"]["faithful"] == eval_stage.faithful_share(answered, eval_stage.article_sentences(ARTICLES))

    # perplexity: exp of the mean loss over answer tokens (and their end token), given the source
    # header alone (the context the text is recited in), the header excluded, cut to the context
    total, count = 0.0, 0
    max_len = model.config.max_seq_len + 1
    end = tokenizer.special_id(qa_format.END)
    with torch.no_grad():
        for p in test:
            header = tokenizer.encode(qa_format.source_header(p["title"], p["section"]))
            ids = (header + tokenizer.encode(" " + p["answer"]) + [end])[:max_len]
            mask = ([0] * len(header) + [1] * len(ids))[: len(ids)]
            logits = model(torch.tensor([ids[:-1]]))[0]
            losses = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="none")
            total += float((losses * torch.tensor(mask[1:], dtype=torch.float)).sum())
            count += sum(mask[1:])
    assert metrics["model"]["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-3)


def test_eval_baseline_scores_match_the_baselines(evaluated):
    world, _, outputs = evaluated
    metrics = json.loads(outputs["metrics"].read_text())
    test, train_pairs = utils.read_jsonl(world["test"]), utils.read_jsonl(world["train"])
    questions, refs = [p["question"] for p in test], [p["answer"] for p in test]
    asked = questions + [q["question"] for q in NATURAL] + OUT_OF_SCOPE  # TF-IDF is fit per call: same call as eval
    closed = baselines.closed_book_answers(train_pairs, asked)
    opened = baselines.open_book_answers(ARTICLES, asked)
    assert metrics["closed_book_retrieval"] == eval_stage.score(closed[: len(test)], refs)
    assert metrics["open_book_retrieval"] == eval_stage.score(opened[: len(test)], refs)
    # the open-book baseline reads the articles, whose sections the references come from
    assert metrics["open_book_retrieval"]["rougeL_f1"] > 0.3
    patterns = [q["pattern"] for q in NATURAL]
    natural = slice(len(test), len(test) + len(NATURAL))
    assert metrics["natural"]["closed_book_retrieval"] == eval_stage.outcomes(closed[natural], patterns)
    assert metrics["natural"]["open_book_retrieval"] == eval_stage.outcomes(opened[natural], patterns)


def test_eval_natural_and_out_of_scope_outcomes_are_the_models(evaluated, loaded):
    world, _, outputs = evaluated
    metrics, details = json.loads(outputs["metrics"].read_text()), json.loads(outputs["details"].read_text())
    _, replies, oos_replies = model_replies(evaluated, loaded)
    rows = utils.read_jsonl(outputs["answers"] / "natural_answers.jsonl")
    assert [(r["id"], r["question"], r["article"], r["pattern"]) for r in rows] == [
        (q["id"], q["question"], q["article"], q["pattern"]) for q in NATURAL
    ]
    assert [(r["source"], r["generated"]) for r in rows] == [(r.source, r.text) for r in replies]
    assert [r["declined"] for r in rows] == [r.confidence < MIN_CONFIDENCE for r in replies]
    assert [r["right"] for r in rows] == [re.search(q["pattern"], r.text, re.I) is not None for q, r in zip(NATURAL, replies)]
    shown = [None if r["declined"] else r["generated"] for r in rows]
    assert metrics["natural"]["model"] == eval_stage.outcomes(shown, [q["pattern"] for q in NATURAL])
    oos_declined = declined(oos_replies)
    assert metrics["out_of_scope"]["model"] == {"declined": oos_declined, "answered": round(1 - oos_declined, 4)}

    per_domain = details["natural_per_domain"]
    assert list(per_domain) == ["astronomy", "animals"]  # the domains present, in utils.DOMAINS order
    for domain, result in per_domain.items():
        index = [i for i, q in enumerate(NATURAL) if q["domain"] == domain]
        assert result["model"] == eval_stage.outcomes([shown[i] for i in index], [NATURAL[i]["pattern"] for i in index])
        assert set(result) == SYSTEMS


def test_eval_writes_per_domain_plots(evaluated):
    _, _, outputs = evaluated
    details = json.loads(outputs["details"].read_text())
    png = outputs["plots"] / "eval_per_domain.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    rows = read_csv(outputs["plots"] / "eval_per_domain.csv")
    assert [r["domain"] for r in rows] == ["astronomy", "animals"]
    for row in rows:
        assert set(row) == {"domain"} | SYSTEMS
        for system in SYSTEMS:
            assert float(row[system]) == details["natural_per_domain"][row["domain"]][system]["accuracy"]


def test_eval_decline_tradeoff_is_what_each_threshold_gives(evaluated, loaded):
    world, checkpoint, outputs = evaluated
    metrics = json.loads(outputs["metrics"].read_text())
    png = outputs["plots"] / "decline_tradeoff.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    rows = [{k: float(v) for k, v in r.items()} for r in read_csv(outputs["plots"] / "decline_tradeoff.csv")]
    assert [r["threshold"] for r in rows] == [i / 100 for i in range(101)]
    assert set(rows[0]) == {
        "threshold",
        "val_right",
        "val_wrong",
        "calibration_declined",
        "natural_right",
        "natural_wrong",
        "out_of_scope_declined",
    }
    for key in ("calibration_declined", "out_of_scope_declined"):
        assert rows[0][key] == 0.0  # no confidence is below 0
        assert all(a[key] <= b[key] for a, b in zip(rows, rows[1:])), key  # a higher bar declines more
    for key in ("val_right", "val_wrong", "natural_right", "natural_wrong"):
        assert all(a[key] >= b[key] for a, b in zip(rows, rows[1:])), key
    assert rows[0]["natural_right"] + rows[0]["natural_wrong"] == pytest.approx(1.0, abs=2e-4)
    # at the configured threshold: the numbers of eval.json
    at = next(r for r in rows if r["threshold"] == MIN_CONFIDENCE)
    natural = metrics["natural"]["model"]
    assert (at["natural_right"], at["natural_wrong"]) == (natural["accuracy"], natural["wrong"])
    assert at["out_of_scope_declined"] == metrics["out_of_scope"]["model"]["declined"]
    # the validation columns are the calibrate stage's, and so is the suggested threshold
    calibrated = json.loads(outputs["calibration"].read_text())
    assert [{k: r[k] for k in calibrated["validation"][0]} for r in rows] == calibrated["validation"]
    details = json.loads(outputs["details"].read_text())
    assert details["suggested_min_confidence"] == calibrated["suggested_min_confidence"]


def test_calibrate_learns_the_confidence_from_the_validation_answers(evaluated, loaded):
    """The calibrate stage's regression turns each answer's evidence into the confidence eval
    uses; on the validation questions, the rows count its answers at each threshold."""
    world, checkpoint, outputs = evaluated
    model, tokenizer, trie = loaded
    made = calibrate.made_for(checkpoint, MAX_NEW_TOKENS, RECITAL_WEIGHT)
    calibration, data = calibrate.read_calibration(outputs["calibration"], made)
    assert calibration is not None and data["features"] == list(calibrate.FEATURES)
    natural = [q["question"] for q in CALIBRATION_NATURAL]
    replies = qa.answer(model, tokenizer, trie, natural + CALIBRATION, MAX_NEW_TOKENS, RECITAL_WEIGHT, calibration=calibration)
    raw = qa.answer(model, tokenizer, trie, natural + CALIBRATION, MAX_NEW_TOKENS, RECITAL_WEIGHT)
    for reply, plain in zip(replies, raw):
        assert (reply.source, reply.text, reply.evidence) == (plain.source, plain.text, plain.evidence)
        z = calibration.bias + sum(w * x for w, x in zip(calibration.weights, plain.evidence))
        assert reply.confidence == pytest.approx(1 / (1 + math.exp(-z)))
    at = next(r for r in data["validation"] if r["threshold"] == MIN_CONFIDENCE)
    given = [r.text if r.confidence >= MIN_CONFIDENCE else None for r in replies[: len(natural)]]
    shares = calibrate.outcomes(given, [q["pattern"] for q in CALIBRATION_NATURAL])
    assert (at["val_right"], at["val_wrong"]) == (shares["accuracy"], shares["wrong"])
    assert at["calibration_declined"] == declined(replies[len(natural) :])
    # another checkpoint's (or other settings' or evidence's) calibration is not used
    assert calibrate.read_calibration(outputs["calibration"], {**made, "recital_weight": RECITAL_WEIGHT + 1}) == (None, {})
    assert calibrate.read_calibration(outputs["calibration"], {**made, "features": ["passage_coverage"]}) == (None, {})


def test_fit_learns_which_evidence_means_right():
    """Answers are right where the best sentence covers the question: the fitted confidence
    rises with that coverage and is a probability; all-wrong answers leave nothing to learn."""
    evidence = [(-0.1, 1.0, cover / 10, 1.0) for cover in range(11)] * 4
    right = [x[2] >= 0.5 for x in evidence]
    calibration = calibrate.fit(evidence, right)
    low, high = calibration.confidence((-0.1, 1.0, 0.1, 1.0)), calibration.confidence((-0.1, 1.0, 0.9, 1.0))
    assert 0 < low < 0.5 < high < 1
    assert calibrate.fit(evidence, [False] * len(evidence)) is None


# ---------------------------------------------------------------- ask.py


def test_ask_with_min_confidence_0_answers_with_a_learned_source(trained, loaded):
    world, model_files, _ = trained
    model, tokenizer, trie = loaded
    question = "What does the tiger eat?"
    result = run_ask("--checkpoint", model_files["checkpoint"], "--params", world["params"], "--min-confidence", "0", question)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert any(line.startswith(source + " ") for source in headers())
    (reply,) = qa.answer(model, tokenizer, trie, [question], MAX_NEW_TOKENS, RECITAL_WEIGHT)
    assert result.stdout == f"{reply.source} {reply.text}\n"  # greedy by default, eval.max_new_tokens from --params


def test_ask_with_min_confidence_above_1_declines_and_names_known_topics(trained, loaded):
    world, model_files, _ = trained
    model, tokenizer, trie = loaded
    question = "Who wrote the novel War and Peace?"
    result = run_ask("--checkpoint", model_files["checkpoint"], "--params", world["params"], "--min-confidence", "1.01", question)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    prefix = "I don't know. The closest topics I know are: "
    assert line.startswith(prefix) and line.endswith(".")
    topics = line[len(prefix) : -1].split(", ")
    assert 1 <= len(topics) <= 3 and len(set(topics)) == len(topics)
    assert set(topics) <= TITLES
    closest = [s.rsplit(" (", 1)[0] for s in qa.closest_sources(model, tokenizer, trie, question)]
    assert topics == list(dict.fromkeys(closest))[:3]


def test_recite_stage_writes_what_the_model_recites_and_ask_reads_it(trained, loaded, tmp_path):
    """models/recitations.json holds every source's greedy recitation, each the one it gets
    alone; ask.py reads the file beside its checkpoint (the same answers as reciting afresh),
    and ignores one made by another checkpoint or at another max_new_tokens."""
    world, model_files, _ = trained
    model, tokenizer, trie = loaded
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(Path(model_files["checkpoint"]).read_bytes())
    cmd = [sys.executable, "-m", "src.recite", "--checkpoint", checkpoint, "--output", tmp_path / "recitations.json"]
    result = subprocess.run([*map(str, cmd), "--params", world["params"]], cwd=REPO, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "recitations.json").read_text())
    recited = written["recitations"]
    assert list(recited) == headers() and written["max_new_tokens"] == MAX_NEW_TOKENS
    for header in headers()[::7]:
        assert recited[header] == qa.recite(model, tokenizer, [trie.ids[header]], MAX_NEW_TOKENS)[0]
    assert recitations_beside(checkpoint, MAX_NEW_TOKENS) == recited
    assert recitations_beside(checkpoint, MAX_NEW_TOKENS + 1) == {}  # another max_new_tokens: recite afresh

    questions = ["What does the tiger eat?", "How many moons orbit Mars?"]
    ask = ["--checkpoint", checkpoint, "--params", world["params"], "--min-confidence", "0"]
    with_file = [run_ask(*ask, q).stdout for q in questions]
    (tmp_path / "recitations.json").unlink()
    assert [run_ask(*ask, q).stdout for q in questions] == with_file  # recited afresh: the same answers
    tampered = written | {"recitations": {h: f"tampered {t}" for h, t in recited.items()}}
    (tmp_path / "recitations.json").write_text(json.dumps(tampered))
    assert all(run_ask(*ask, q).stdout.split(": ", 1)[1].startswith("tampered ") for q in questions)  # read, not recited
    (tmp_path / "recitations.json").write_text(json.dumps(tampered | {"checkpoint_sha256": "0" * 64}))
    assert [run_ask(*ask, q).stdout for q in questions] == with_file  # another checkpoint's: ignored
    (tmp_path / "recitations.json").write_text('{"format": "minillm-recitations", "recitations": [1]}')
    bad = run_ask(*ask, questions[0])
    assert bad.returncode == 1
    assert bad.stderr == f"error: {tmp_path / 'recitations.json'}: key 'recitations' must map source headers to texts\n"


def test_ask_declines_a_question_with_nothing_to_check(trained):
    """No content word ("???", "what is it"): nothing a recitation could cover, so no answer."""
    world, model_files, _ = trained
    for question in ("???", "what is it", "the of and"):
        result = run_ask(
            "--checkpoint", model_files["checkpoint"], "--params", world["params"], "--min-confidence", "0.01", question
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("I don't know. The closest topics I know are: "), (question, result.stdout)


def test_ask_reads_questions_from_stdin_until_eof(trained, loaded):
    world, model_files, _ = trained
    model, tokenizer, trie = loaded
    questions = ["What does the tiger eat?", "What moons does Mars have?", "How do I bake sourdough bread?"]
    result = run_ask("--checkpoint", model_files["checkpoint"], "--params", world["params"], stdin="\n".join(questions) + "\n")
    assert result.returncode == 0, result.stderr
    expected = []
    for q, reply in zip(questions, qa.answer(model, tokenizer, trie, questions, MAX_NEW_TOKENS, RECITAL_WEIGHT)):
        closest = [s.rsplit(" (", 1)[0] for s in qa.closest_sources(model, tokenizer, trie, q)]
        expected.append(reply.shown(MIN_CONFIDENCE, list(dict.fromkeys(closest))[:3]))  # eval.min_confidence from --params
    intro, _, dialogue = result.stdout.partition("\n")
    assert "question" in intro.lower()
    assert dialogue == "".join(f"> {e}\n" for e in expected) + "> "  # one prompt per question, then EOF ends it


@pytest.mark.parametrize(
    "args, message",
    [
        (["--top-k", "0", "Why?"], "--top-k must be at least 1"),
        (["--temperature", "nan", "Why?"], "--temperature must be a finite number"),
        (["--temperature", "-1", "Why?"], "--temperature must be at least 0"),
        (["--top-p", "0", "Why?"], "--top-p must be more than 0"),
        (["--max-new-tokens", "-5", "Why?"], "--max-new-tokens must be at least 1"),
        (["--min-confidence", "-0.5", "Why?"], "--min-confidence must be at least 0"),
        (["  "], "the question is empty"),
    ],
)
def test_ask_with_a_bad_flag_is_a_one_line_error(tmp_path, args, message):
    result = run_ask("--checkpoint", tmp_path / "never-read.pt", *args)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_eval_settings_out_of_range_are_one_line_errors(tmp_path):
    for key, value, message in [("max_new_tokens", -1, "at least 1"), ("min_confidence", float("nan"), "a finite number")]:
        path = tmp_path / "params.yaml"
        path.write_text(
            yaml.safe_dump({"eval": {"max_new_tokens": 80, "min_confidence": 0.5, "recital_weight": 4.0} | {key: value}})
        )
        with pytest.raises(utils.UserError, match=rf"eval: key '{key}' must be {message}"):
            qa.answer_settings(path)


def test_ask_with_a_missing_checkpoint_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nope.pt"
    result = run_ask("--checkpoint", missing, "What is a comet?")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0] and "not found" in lines[0]
    assert result.stdout == ""


def test_ask_finds_the_project_model_and_params_from_any_directory(tmp_path, monkeypatch):
    from src import ask

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ask.py", "What is a comet?"])
    args = ask.parse_args()
    assert Path(args.checkpoint) == REPO / "models" / "model.pt"
    assert Path(args.params) == REPO / "params.yaml"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from("abcde"), max_size=40), st.lists(st.sampled_from("abcde"), max_size=40))
def test_fast_lcs_is_the_plain_lcs(a, b):
    assert eval_stage.lcs_length_fast(a, b) == eval_stage.lcs_length(a, b)


def test_rouge_l_is_the_rouge_score_packages():
    from rouge_score import rouge_scorer

    reference = rouge_scorer.RougeScorer(["rougeL"])
    texts = [a["lead"] for a in ARTICLES] + [s["text"] for a in ARTICLES for s in a["sections"]]
    texts += ["", "!!!", "Tigers' stripes (2 kinds): 3,000 km/h?", "TIGERS hunt deer"]
    for ref in texts:
        for cand in texts[:8] + texts[-4:]:
            assert eval_stage.rouge_l(ref, cand) == pytest.approx(reference.score(ref, cand)["rougeL"].fmeasure, abs=1e-12)


def test_validation_questions_are_not_evaluation_questions():
    """calibration/ (where the confidence and threshold are chosen) shares no question, word
    for word, with evalsets/ (where they are measured), and repeats none of its own."""
    asked = [" ".join(eval_stage.normalize(q["question"])) for q in calibrate.read_natural(REPO / "calibration/natural")]
    asked += [
        " ".join(eval_stage.normalize(q["question"])) for q in calibrate.read_questions(REPO / "calibration/out_of_scope.jsonl")
    ]
    evaluated = [q["question"] for q in calibrate.read_natural(REPO / "evalsets/natural")]
    evaluated += [q["question"] for q in calibrate.read_questions(REPO / "evalsets/out_of_scope.jsonl")]
    assert len(asked) == len(set(asked))
    assert not set(asked) & {" ".join(eval_stage.normalize(q)) for q in evaluated}
    assert len(asked) >= 200
