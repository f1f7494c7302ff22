"""Byte-level BPE tokenizer (Byte Pair Encoding), in the style of GPT-2/GPT-4.

Text is first cut into chunks (words, numbers, punctuation runs, whitespace) by a regex,
then each chunk's UTF-8 bytes are merged pair by pair using the merges learned in training.
Starting from the 256 byte values means any string can be encoded and decoded back exactly.

    >>> tok = Tokenizer.train(["aaab aaab aaab"], vocab_size=260, special_tokens=["<|end|>"])
    >>> tok.merges[0]          # the most frequent pair: bytes 97, 97 ("a", "a") become 256
    (97, 97)
    >>> tok.decode(tok.encode("aaab!"))
    'aaab!'
    >>> tok.special_id("<|end|>")  # special tokens come after the bytes and the merges
    259

This module imports nothing from the project, so it can be read and reused on its own.
"""
from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

# GPT-2-like split, written for Python's `re`, which has no \p{L}: [^\W\d_] is a letter.
# In order: contractions, letter runs with an optional leading space, 1-3 digit groups
# (as in GPT-4), punctuation runs with an optional leading space, then whitespace.
# Every character falls in one of these, so the chunks always add up to the whole text.
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)| ?[^\W\d_]+|\d{1,3}| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
FORMAT, VERSION = "minillm-bpe", 1
DEFAULT_SPECIALS = ("<|endoftext|>", "<|question|>", "<|answer|>")


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair` in `ids`, left to right."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class Tokenizer:
    """Ids 0..255 are bytes, then one id per merge (in merge order), then the special tokens."""

    def __init__(self, merges: Sequence[tuple[int, int]], special_tokens: Sequence[str] = (),
                 pattern: str = SPLIT_PATTERN) -> None:
        self.merges = [tuple(pair) for pair in merges]
        self.pattern = pattern
        self._split = re.compile(pattern)
        self._ranks: dict[tuple[int, int], int] = {}  # pair -> the id it merges into
        self._vocab = {i: bytes([i]) for i in range(256)}  # id -> the bytes it stands for
        for new_id, (a, b) in enumerate(self.merges, start=256):
            if a not in self._vocab or b not in self._vocab or (a, b) in self._ranks:
                raise ValueError(f"merge {new_id - 256} ({a}, {b}) uses an unknown id or repeats")
            self._ranks[(a, b)] = new_id
            self._vocab[new_id] = self._vocab[a] + self._vocab[b]
        if len(set(special_tokens)) != len(special_tokens) or "" in special_tokens:
            raise ValueError(f"special tokens must be distinct and non-empty: {special_tokens}")
        first = 256 + len(self.merges)
        self.special_tokens = {tok: first + k for k, tok in enumerate(special_tokens)}
        self._special_by_id = {i: tok for tok, i in self.special_tokens.items()}
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int,
              special_tokens: Sequence[str] = DEFAULT_SPECIALS) -> Tokenizer:
        """Learn merges until the vocabulary (bytes + merges + specials) has `vocab_size` ids.

        Each distinct chunk is stored once with its count, and after a merge only the chunks
        that contain the merged pair are revisited, which keeps training fast. The next merge
        is the most frequent pair; ties go to the smallest pair, so training is reproducible.
        """
        num_merges = vocab_size - 256 - len(special_tokens)
        if num_merges < 0:
            raise ValueError(f"vocab_size {vocab_size} is below 256 bytes + "
                             f"{len(special_tokens)} special tokens")
        split = re.compile(SPLIT_PATTERN)
        chunk_counts = Counter(chunk for text in texts for chunk in split.findall(text))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())

        pair_counts: dict[tuple[int, int], int] = defaultdict(int)
        where: dict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> chunks holding it
        for w, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += freqs[w]
                where[pair].add(w)
        # A max-heap by count; entries go stale when counts change and are skipped when popped.
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        merges: list[tuple[int, int]] = []
        while len(merges) < num_merges:
            if not heap:
                raise ValueError(f"training text too small: only {len(merges)} merges possible, "
                                 f"{num_merges} needed for vocab_size {vocab_size}")
            neg_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -neg_count:
                continue
            new_id = 256 + len(merges)
            merges.append(pair)
            changed = set()
            for w in where.pop(pair):
                old, new = words[w], _merge(words[w], pair, new_id)
                words[w] = new
                old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
                for p in old_pairs:
                    pair_counts[p] -= freqs[w]
                for p in new_pairs:
                    pair_counts[p] += freqs[w]
                    where[p].add(w)
                for p in set(old_pairs) - set(new_pairs) - {pair}:
                    where[p].discard(w)
                changed.update(old_pairs, new_pairs)
            for p in changed:
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
                    where.pop(p, None)
        return cls(merges, special_tokens)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    def special_id(self, token: str) -> int:
        if token not in self.special_tokens:
            raise KeyError(f"unknown special token {token!r}; known: {list(self.special_tokens)}")
        return self.special_tokens[token]

    def encode(self, text: str) -> list[int]:
        """Encode ordinary text. Special-token strings in it are plain text, never control ids."""
        ids: list[int] = []
        for chunk in self._split.findall(text):
            if chunk not in self._cache:
                if len(self._cache) >= 200_000:  # keep memory bounded on huge corpora
                    self._cache.clear()
                self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(self._cache[chunk])
        return ids

    def _encode_chunk(self, chunk: str) -> list[int]:
        # Apply merges in the order they were learned: always the earliest one present next.
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self._ranks.get(p, float("inf")))
            if pair not in self._ranks:
                break
            ids = _merge(ids, pair, self._ranks[pair])
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Turn ids back into text; byte sequences that are not valid UTF-8 become U+FFFD."""
        parts = []
        for i in ids:
            if i in self._special_by_id:
                parts.append(self._special_by_id[i].encode("utf-8"))
            elif i in self._vocab:
                parts.append(self._vocab[i])
            else:
                raise ValueError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return b"".join(parts).decode("utf-8", errors="replace")

    def save(self, path: str | Path) -> None:
        """Write one JSON file, one merge per line with the text it makes, for humans to read."""
        merge_lines = ",\n".join(
            f"    [{a}, {b}, {json.dumps(self._render(i), ensure_ascii=False)}]"
            for i, (a, b) in enumerate(self.merges, start=256))
        Path(path).write_text("\n".join([
            "{",
            f'  "format": "{FORMAT}",',
            f'  "version": {VERSION},',
            f'  "pattern": {json.dumps(self.pattern)},',
            f'  "special_tokens": {json.dumps(self.special_tokens, ensure_ascii=False)},',
            '  "merges": [',
            merge_lines,
            "  ]",
            "}",
        ]) + "\n", encoding="utf-8")

    def _render(self, token_id: int) -> str:
        # Bytes that are only part of a UTF-8 character are shown as escapes like \xe2.
        return self._vocab[token_id].decode("utf-8", errors="backslashreplace")

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Rebuild a saved tokenizer (same ids); raise ValueError naming the file if it is bad."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            if data.get("version") != VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            merges, specials = data.get("merges"), data.get("special_tokens")
            if not isinstance(merges, list) or not all(
                    isinstance(m, list) and len(m) == 3 and all(type(x) is int for x in m[:2])
                    for m in merges):
                raise ValueError('"merges" must be a list of [id, id, text]')
            if not isinstance(specials, dict) or not isinstance(data.get("pattern"), str):
                raise ValueError('missing "special_tokens" or "pattern"')
            tok = cls([(m[0], m[1]) for m in merges], list(specials), data["pattern"])
            if tok.special_tokens != specials:
                raise ValueError("special token ids must follow the merges, in order")
            return tok
        except (ValueError, re.error, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: invalid tokenizer file: {err}") from None
