"""Tests for the byte-level BPE tokenizer: round trips, training, special tokens, files."""

import json
import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.tokenizer import MIN_VOCAB_SIZE, SPECIAL_TOKENS, SPLIT_PATTERN, Tokenizer, train_merges_fast, train_merges_plain

CORPUS = [
    "The Sun is a star at the centre of the Solar System. It's a nearly perfect ball of hot "
    "plasma, heated to incandescence by nuclear fusion reactions in its core.",
    "The heart pumps blood through the blood vessels of the body. In humans, it's about the "
    "size of a closed fist, and it beats roughly 100000 times a day.",
    "Rain forms when water vapour condenses into droplets that grow heavy enough to fall. "
    "They'll fall as snow instead when the air below the cloud is cold enough!",
    "Le café est très chaud; la crème brûlée aussi. 東京は日本の首都です。 Emoji: 😀🚀 (x2)",
    "def add(a, b):\n    return a + b  # 2 + 2 == 4\n\n\tprint(add(1, 2))\n",
] * 20


@cache
def trained(vocab_size: int = 400) -> Tokenizer:
    return Tokenizer.train(CORPUS, vocab_size)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_is_lossless_for_any_text(text: str) -> None:
    assert trained().decode(trained().encode(text)) == text


@pytest.mark.parametrize("text", ["", "\x00", "\u0301", "a\u0301\u0301", "😀👩‍👩‍👧", "\r\n\t \n", "_"])
def test_round_trip_edge_cases(text: str) -> None:
    assert trained().decode(trained().encode(text)) == text


def test_split_pattern_chunks() -> None:
    assert re.findall(SPLIT_PATTERN, "I'll pay 12345 dollars!!  ok") == [
        "I",
        "'ll",
        " pay",
        " ",
        "123",
        "45",
        " dollars",
        "!!",
        " ",
        " ok",
    ]


def test_hand_checked_merges() -> None:
    # Chunks: "aaab" once, " aaab" twice. (a,a) occurs 2x per chunk = 6 times: merge 256.
    # Then (256,a) and (a,b) both occur 3 times; the tie goes to the smaller pair (97, 98).
    tok = Tokenizer.train(["aaab aaab aaab"], vocab_size=259, special_tokens=())
    assert tok.merges == [(97, 97), (97, 98), (256, 257)]
    assert tok.encode("aaab") == [258]
    assert tok.encode(" aaab") == [32, 258]


def test_fast_training_matches_plain_loop_on_corpus() -> None:
    assert trained(500).merges == train_merges_plain(CORPUS, 500 - MIN_VOCAB_SIZE)
    assert Tokenizer.train(CORPUS, 400, plain=True).merges == trained(400).merges


# A small alphabet gives many equal counts (so the tie-break matters) and runs like "aaaa"
# (where merges overlap); any text covers multi-byte characters and odd whitespace.
texts_for_training = st.lists(st.text(alphabet="ab c1!é") | st.text(), max_size=6)


@settings(max_examples=300, deadline=None)
@given(texts_for_training, st.integers(0, 40))
def test_fast_training_matches_plain_loop_on_any_text(texts: list[str], num_merges: int) -> None:
    assert train_merges_fast(texts, num_merges) == train_merges_plain(texts, num_merges)


def test_training_is_deterministic_and_order_independent() -> None:
    first = Tokenizer.train(CORPUS, 500)
    assert Tokenizer.train(CORPUS, 500).merges == first.merges
    assert Tokenizer.train(CORPUS[::-1], 500).merges == first.merges


@pytest.mark.parametrize("size", [MIN_VOCAB_SIZE, 300, 512])
def test_vocab_size_is_exact(size: int) -> None:
    tok = Tokenizer.train(CORPUS, size)
    assert tok.vocab_size == size
    assert len(tok.merges) == size - MIN_VOCAB_SIZE
    assert max(tok.special_tokens.values()) == size - 1


@pytest.mark.parametrize("plain", [False, True])
def test_bad_vocab_sizes_raise(plain: bool) -> None:
    with pytest.raises(ValueError, match="below 256"):
        Tokenizer.train(CORPUS, MIN_VOCAB_SIZE - 1, plain=plain)
    with pytest.raises(ValueError, match="too small: only 2 merges possible"):
        Tokenizer.train(["ab ab"], 270, plain=plain)


def test_merges_never_cross_chunk_boundaries() -> None:
    tok = Tokenizer.train(["the cat sat. " * 500], vocab_size=264, special_tokens=())
    assert [tok.decode([i]) for i in tok.encode("the cat sat.")] == ["the", " cat", " sat", "."]
    for i in range(256, tok.vocab_size):
        token = tok.decode([i])
        assert re.findall(SPLIT_PATTERN, token) == [token]


def test_compression_on_training_text() -> None:
    text = "".join(CORPUS)
    assert len(trained(500).encode(text)) < 0.4 * len(text.encode("utf-8"))


def test_special_tokens_get_ids_after_merges_and_cannot_be_injected() -> None:
    tok = trained()
    assert SPECIAL_TOKENS == ("<|endoftext|>", "<|question|>", "<|answer|>")  # the strings qa_format.py relies on
    ids = [tok.special_id(s) for s in SPECIAL_TOKENS]
    assert ids == [256 + len(tok.merges) + k for k in range(3)]
    encoded = tok.encode("hi <|endoftext|><|answer|>")
    assert not set(encoded) & set(ids)
    assert tok.decode(encoded) == "hi <|endoftext|><|answer|>"
    assert tok.decode([ids[1], *tok.encode(" why?"), ids[2]]) == "<|question|> why?<|answer|>"
    with pytest.raises(KeyError, match="unknown special token"):
        tok.special_id("<|nope|>")


def test_decode_replaces_invalid_bytes_and_rejects_unknown_ids() -> None:
    tok = trained()
    assert tok.decode([0xE2, 0x82]) == "\ufffd"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])


def test_save_load_gives_identical_tokenizer(tmp_path) -> None:
    tok, path = trained(), tmp_path / "tok.json"
    tok.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.merges == tok.merges
    assert loaded.special_tokens == tok.special_tokens
    sample = "".join(CORPUS[:5]) + " <|endoftext|> unseen wörds 🙂"
    assert loaded.encode(sample) == tok.encode(sample)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["merges"][0][:2] == list(tok.merges[0])
    assert " the" in {text for _, _, text in data["merges"]}  # the merged text, for humans


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: "{ not json",
        lambda d: json.dumps({**d, "format": "something-else"}),
        lambda d: json.dumps({**d, "version": 99}),
        lambda d: json.dumps({**d, "merges": [[1, 2]]}),
        lambda d: json.dumps({**d, "merges": [[256, 1, "?"]]}),
        lambda d: json.dumps({**d, "pattern": "(unclosed"}),
        lambda d: json.dumps({**d, "special_tokens": {"<|endoftext|>": 7}}),
    ],
)
def test_load_of_bad_file_raises_value_error_naming_it(tmp_path, mangle) -> None:
    path = tmp_path / "tok.json"
    Tokenizer.train(["aaab aaab aaab"], 260, ["<|endoftext|>"]).save(path)
    path.write_text(mangle(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Tokenizer.load(path)
