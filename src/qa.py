"""Answering a question with a trained model, and loading the checkpoint it is in.

The model answers in the format it learned (src/qa_format.py, which shows the layout): after
<|answer|>, the header of its source, "Tiger (Diet):", then the text. So answering is two steps
(`answer`): name the source, choosing only among the real ones (SourceTrie), then recite the
text the model learned after that header, from the header alone, exactly as it learned it
(recitation, as in Sun et al. 2023, "Recitation-Augmented Language Models"; a model trained
with train.recitation false continues after the question and the header instead). Between the
two, with eval.recital_weight > 0, the model checks the source it named against the question
by what it recites from every source it knows (`check`, src/verify.py).
Its confidence is the probability of the source it named (checked: the square root of its
article's, times the share of the question its recitation covers; with a calibration, the
probability that the answer is right, learned on validation questions: src/calibrate.py):
too low, and it declines. Shared by recite, calibrate, eval, ask and explain.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import get_type_hints

import torch

from src import utils, verify
from src.model import MiniTransformer, ModelConfig, sample_next
from src.qa_format import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, END, encode_prompt, source_title
from src.tokenizer import ANSWER, Tokenizer


def answer_settings(params_path: str | Path) -> tuple[int, float, float]:
    """max_new_tokens, min_confidence and recital_weight from params.yaml's eval section: the
    eval stage and ask.py answer with the same settings."""
    params = utils.load_params("eval", params_path, known=["max_new_tokens", "min_confidence", "recital_weight"])
    return (
        utils.require(params, "max_new_tokens", int, at_least=1),
        utils.require(params, "min_confidence", float, at_least=0),
        utils.require(params, "recital_weight", float, at_least=0),
    )


CHECKPOINT_TYPES = {"model": dict, "config": dict, "tokenizer": str, "sources": list}  # what load_model reads
CONFIG_TYPES = {f.name: get_type_hints(ModelConfig)[f.name] for f in fields(ModelConfig)}
CONFIG_ADDED = {"positions": "rotary", "recitation": True}  # what checkpoints written before these keys were
MAX_SEQ_LEN = 65_536  # beyond it a checkpoint is broken or hostile: the rotary tables alone would take gigabytes


def load_model(checkpoint: str | Path, device: str = "cpu") -> tuple[MiniTransformer, Tokenizer, list[str]]:
    """Load a checkpoint written by train.py: the model, its tokenizer (stored inside, so a copied
    checkpoint works from anywhere) and the source headers it learned.

    The file is untrusted: torch.load(weights_only=True) unpickles tensors and plain values,
    never code, and the config, tokenizer, sources and weight shapes are all checked before the
    model is built. Any problem is one UserError naming the file.
    """
    state = read_checkpoint(checkpoint, device)
    config = checkpoint_config(utils.Params(state["config"], f"{checkpoint}: config"))
    try:
        tokenizer = Tokenizer.loads(state["tokenizer"], f"{checkpoint}: tokenizer")
    except ValueError as err:
        raise utils.UserError(str(err)) from None
    if tokenizer.vocab_size != config.vocab_size:
        raise utils.UserError(f"{checkpoint}: its tokenizer has {tokenizer.vocab_size} ids, its config {config.vocab_size}")
    sources = state["sources"]
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        raise utils.UserError(f"{checkpoint}: key 'sources' must be a non-empty list of source headers")
    check_weights(checkpoint, state["model"], config)
    model = MiniTransformer(config)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, tokenizer, sources


def read_checkpoint(path: str | Path, device: str) -> dict:
    """The dict in a checkpoint file, with every key load_model needs, at the version it reads."""
    utils.check_file(path)
    if not zipfile.is_zipfile(path):  # what torch.save writes; a cut-short file has lost its zip index
        raise utils.UserError(f"{path}: not a PyTorch checkpoint (not a zip archive: cut short, or another kind of file)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise utils.UserError(f"{path}: refused: it holds objects other than tensors and plain values") from None
    except Exception as err:  # torch raises many kinds (RuntimeError, KeyError, EOFError...) on a damaged archive
        raise utils.UserError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise utils.UserError(f"{path}: not a {CHECKPOINT_FORMAT} file (one from older code? retrain: dvc repro train)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise utils.UserError(f"{path}: checkpoint version {state.get('version')!r}, this code reads {CHECKPOINT_VERSION}")
    for key, kind in CHECKPOINT_TYPES.items():
        if key not in state:
            raise utils.UserError(f"{path}: missing key '{key}'")
        if not isinstance(state[key], kind):
            raise utils.UserError(f"{path}: key '{key}' must be {kind.__name__}")
    return state


def checkpoint_config(config: utils.Params) -> ModelConfig:
    """The model's shape from a checkpoint: known keys, each of its type and within bounds
    (ModelConfig's own checks, and MAX_SEQ_LEN), before anything is allocated."""
    unknown = sorted(set(config) - set(CONFIG_TYPES))
    if unknown:
        raise utils.UserError(f"{config.where}: unknown key '{unknown[0]}'")
    config = utils.Params({**CONFIG_ADDED, **config}, config.where)
    values = {key: utils.require(config, key, kind) for key, kind in CONFIG_TYPES.items()}
    utils.check_range(f"{config.where}: key 'max_seq_len'", values["max_seq_len"], at_most=MAX_SEQ_LEN)
    try:
        return ModelConfig(**values)
    except ValueError as err:
        raise utils.UserError(f"{config.where}: {err}") from None


def check_weights(path: str | Path, weights: dict, config: ModelConfig) -> None:
    """A UserError unless `weights` are exactly the tensors, of the shapes, of the model of
    `config`. The model is built to compare (on the CPU: the meta device, which allocates
    nothing, costs a second of imports here) only once the config's layers and widths are
    those of the tensors in the file, so a config can't make it build something huge."""
    if config.num_layers > len(weights):  # every layer has weights of its own: don't build a million to see it
        raise utils.UserError(f"{path}: {len(weights)} weights can't make the {config.num_layers} layers of its config")
    check_shape(path, weights, "tok_emb.weight", (config.vocab_size, config.emb_dim))
    expected = {name: tuple(t.shape) for name, t in MiniTransformer(config).state_dict().items()}
    odd = [name for name in weights if name not in expected] + [name for name in expected if name not in weights]
    if odd:
        raise utils.UserError(f"{path}: weight {odd[0]!r} is {'missing' if odd[0] in expected else 'not in the model'}")
    for name, shape in expected.items():
        check_shape(path, weights, name, shape)


def check_shape(path: str | Path, weights: dict, name: str, shape: tuple[int, ...]) -> None:
    tensor = weights.get(name)
    if tensor is None:
        raise utils.UserError(f"{path}: weight {name!r} is missing")
    if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
        got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise utils.UserError(f"{path}: weight '{name}' must have shape {shape} for its config, got {got}")


class SourceTrie:
    """The token ids of every valid source header, as a prefix tree. Decoding an answer's
    header walks it: at each step only the tokens that continue some real header are
    allowed, so the model can only name a source it learned (never an invented one)."""

    def __init__(self, tokenizer: Tokenizer, sources: list[str]):
        self.sources = sources
        self.ids = {source: tokenizer.encode(source) for source in sources}
        self.root: dict = {}
        self.depth = max(len(ids) for ids in self.ids.values())  # tokens of the longest header
        for index, source in enumerate(sources):
            ids = self.ids[source]
            node = self.root
            for token in ids:
                node = node.setdefault(token, {})
            node[None] = index  # the key None marks the end of a header
        self.sections_of: dict[str, list[int]] = {}  # article title -> its sources
        for index, source in enumerate(sources):
            self.sections_of.setdefault(source_title(source), []).append(index)
        self.answer_id = tokenizer.special_id(ANSWER)

    def header_start(self, sequence: list[int]) -> int:
        """Where the header starts in a prompt followed by (part of) a header: after the last <|answer|>."""
        return len(sequence) - sequence[::-1].index(self.answer_id)

    def prompt(self, tokenizer: Tokenizer, question: str, max_seq_len: int) -> list[int]:
        """encode_prompt, with the question cut short if needed so any header still fits after it."""
        ids = encode_prompt(tokenizer, question)
        room = max(2, max_seq_len - self.depth - 1)
        return ids if len(ids) <= room else ids[: room - 1] + ids[-1:]

    @staticmethod
    def allowed(node: dict) -> list[int]:
        return [token for token in node if token is not None]


@dataclass
class Reply:
    source: str  # the header the answer recites, e.g. "Tiger (Diet):"
    text: str  # the answer after it
    confidence: float  # the model's probability of that source (checked: qa.pick's, or calibrated)
    evidence: tuple[float, ...] = ()  # what the check found (qa.pick), what the calibration reads

    def shown(self, min_confidence: float, closest: list[str]) -> str:
        """What a user sees: the answer with its source, or an honest decline."""
        if self.confidence >= min_confidence:
            return f"{self.source} {self.text}"
        topics = ", ".join(closest) if closest else "none"
        return f"I don't know. The closest topics I know are: {topics}."


@torch.no_grad()
def answer(
    model: MiniTransformer,
    tokenizer: Tokenizer,
    trie: SourceTrie,
    questions: list[str],
    max_new_tokens: int,
    recital_weight: float = 0.0,
    batch_size: int = 64,
    memory: dict[str, str] | None = None,
    calibration: Calibration | None = None,
    **sampling,
) -> list[Reply]:
    """Answer many questions in two steps, as the model was taught:
      1. name the source (`name`); with recital_weight > 0, pick it among the sections of
         the article named, by what the model recites from each (`check`);
      2. recite it: the text the model continues after that header, from the header alone,
         exactly as it learned the passage (greedy unless sampling options are given). A
         model trained with train.recitation false (model.config.recitation) continues after
         the question and the header instead, as its Q&A pairs taught it (and is not checked).
    Up to batch_size questions are decoded together (BatchDecoder); each answer is the one it
    would get alone (a test checks it). `memory` holds the greedy recitation of each header
    recited so far (at this max_new_tokens): pass one to keep them from call to call, or one
    read from models/recitations.json (src/recite.py). `calibration` (src/calibrate.py) turns
    a checked answer's evidence into its confidence."""
    memory = {} if memory is None else memory
    if recital_weight > 0 and model.config.recitation:
        named = check(model, tokenizer, trie, questions, recital_weight, memory, max_new_tokens, batch_size)
        if calibration is not None:
            named = [calibration.applied(reply) for reply in named]
    else:
        named = name(model, tokenizer, trie, questions, batch_size)
    if model.config.recitation and is_greedy(sampling):  # the text depends on its header alone
        recite_headers(model, tokenizer, trie, [reply.source for reply in named], memory, max_new_tokens, batch_size)
        texts = [memory[reply.source] for reply in named]
    else:
        contexts = [trie.ids[reply.source] for reply in named]
        if not model.config.recitation:
            contexts = [trie.prompt(tokenizer, q, model.config.max_seq_len) + c for q, c in zip(questions, contexts)]
        texts = in_batches(contexts, batch_size, lambda group: recite(model, tokenizer, group, max_new_tokens, **sampling))
    return [Reply(reply.source, text, reply.confidence, reply.evidence) for reply, text in zip(named, texts)]


def recite_headers(
    model: MiniTransformer,
    tokenizer: Tokenizer,
    trie: SourceTrie,
    headers: list[str],
    memory: dict[str, str],
    max_new_tokens: int,
    batch_size: int,
) -> None:
    """Add to memory the greedy recitation of each header it does not hold yet."""
    new = list(dict.fromkeys(h for h in headers if h not in memory))
    texts = in_batches([trie.ids[h] for h in new], batch_size, lambda group: recite(model, tokenizer, group, max_new_tokens))
    memory.update(zip(new, texts))


@dataclass
class Calibration:
    """A logistic regression from a checked answer's evidence (`pick`) to the probability that
    the answer is right: fitted on validation questions by the calibrate stage (src/calibrate.py)."""

    weights: list[float]  # one per item of the evidence
    bias: float

    def confidence(self, evidence: tuple[float, ...]) -> float:
        score = self.bias + sum(w * x for w, x in zip(self.weights, evidence, strict=True))
        return 1 / (1 + math.exp(-score))

    def applied(self, reply: Reply) -> Reply:
        """The reply with its confidence calibrated."""
        return replace(reply, confidence=self.confidence(reply.evidence))


ANSWER_TYPE_BONUS = 8.0  # what fitting the answer type adds to a candidate's score (chosen on validation)


@dataclass
class Candidate:
    source: str  # a section of an article the check reads (`candidates`)
    logprob: float  # log P(source | question)
    section_logprob: float  # log P(its section | question): the log of the sum over the section's parts
    coverage: float  # the share of the question's words (by weight) its section's recitation covers (verify.Recitations)
    sentence_coverage: float  # the share its passage's best sentence covers
    fits_answer_type: bool  # verify.fits_answer_type of that sentence: False for a how-many question and no number in it

    def score(self, recital_weight: float) -> float:
        """What `check` ranks the candidates by. Its probability counts half as the passage's
        own, half as its section's: generate.py cuts a long section into parts, the model
        spreads its belief over them, and which part answers is mostly for the recited words
        to tell."""
        recited = recital_weight * (self.coverage + self.sentence_coverage)
        return (self.logprob + self.section_logprob) / 2 + recited + ANSWER_TYPE_BONUS * self.fits_answer_type


@torch.no_grad()
def candidates(
    model: MiniTransformer,
    tokenizer: Tokenizer,
    trie: SourceTrie,
    questions: list[str],
    memory: dict[str, str],
    max_new_tokens: int,
    batch_size: int = 64,
) -> list[list[Candidate]]:
    """Every section of two articles per question: the one its source names (`name`) and the
    one with the recited sentence that covers the question best, with the model's
    log-probability of each and its recitation's coverage of the question. The model recites
    every source it knows (into memory, once: a memory read from models/recitations.json
    already holds them)."""
    recite_headers(model, tokenizer, trie, trie.sources, memory, max_new_tokens, batch_size)
    recited = verify.Recitations({source: memory[source] for source in trie.sources})
    named = name(model, tokenizer, trie, questions, batch_size)
    groups = []
    for question, reply in zip(questions, named):
        articles = dict.fromkeys(source_title(s) for s in (reply.source, recited.best_covered(question)))
        groups.append([trie.sources[i] for article in articles for i in trie.sections_of[article]])
    prompts = [trie.prompt(tokenizer, q, model.config.max_seq_len) for q in questions]
    trees = [HeaderTree.build(prompt, [trie.ids[s] for s in group]) for prompt, group in zip(prompts, groups)]
    logprobs = tree_logprobs(model, trie, trees, batch_size)
    return [scored_candidates(q, dict(zip(group, lp)), recited) for q, group, lp in zip(questions, groups, logprobs)]


def scored_candidates(question: str, logprobs: dict[str, float], recited: verify.Recitations) -> list[Candidate]:
    """A Candidate per source, given the model's log-probability of each (all the parts of a
    section among them) and what the model recites."""
    sections: dict[str, list[float]] = {}
    for source, logprob in logprobs.items():
        sections.setdefault(verify.section_of(source), []).append(logprob)
    section_logprob = {section: log_sum_exp(values) for section, values in sections.items()}
    return [
        Candidate(source, logprob, section_logprob[verify.section_of(source)], *recited.coverage(question, source))
        for source, logprob in logprobs.items()
    ]


def log_sum_exp(logprobs: list[float]) -> float:
    """log(sum(exp(x))): the log-probability of any of several outcomes."""
    return torch.logsumexp(torch.tensor(logprobs, dtype=torch.float64), 0).item()


def check(
    model: MiniTransformer,
    tokenizer: Tokenizer,
    trie: SourceTrie,
    questions: list[str],
    recital_weight: float,
    memory: dict[str, str],
    max_new_tokens: int,
    batch_size: int = 64,
) -> list[Reply]:
    """Pick each question's source among its candidates (verify.py): the model's
    log-probability of it and of its section, plus recital_weight times the shares of the
    question's words (by weight: rare words count more) that its section's recitation and its
    passage's best sentence cover,
    plus ANSWER_TYPE_BONUS where that sentence fits the answer type (Candidate.score)."""
    groups = candidates(model, tokenizer, trie, questions, memory, max_new_tokens, batch_size)
    return [pick(group, recital_weight) for group in groups]


def pick(group: list[Candidate], recital_weight: float) -> Reply:
    """The best-scoring candidate (the first on a tie), with its confidence: the square root
    of the model's probability of its article (of all its sections) times its section's
    coverage (the square root, chosen on validation, lets a well-covered section of an
    article the model did not name be answered). Its evidence, what src/calibrate.py turns
    into a calibrated confidence: the log of that article probability, the section's and the
    best sentence's coverage, whether that sentence fits the answer type (1.0 or 0.0), and
    the margin by which its score beats the best of the other sections' (a close second
    means the check could as well have picked another answer; 0 where there is none)."""
    scores = [c.score(recital_weight) for c in group]
    best = group[scores.index(max(scores))]
    others = [x for c, x in zip(group, scores) if verify.section_of(c.source) != verify.section_of(best.source)]
    margin = max(scores) - max(others, default=max(scores))
    article = min(0.0, log_sum_exp([c.logprob for c in group if source_title(c.source) == source_title(best.source)]))
    evidence = (article, best.coverage, best.sentence_coverage, float(best.fits_answer_type), margin)
    return Reply(best.source, "", math.exp(article / 2) * best.coverage, evidence)


def is_greedy(sampling: dict) -> bool:
    """sample_next's rule: temperature 0 (the default) always picks the likeliest token."""
    return sampling.get("temperature", 0.0) <= 0


@torch.no_grad()
def name(
    model: MiniTransformer, tokenizer: Tokenizer, trie: SourceTrie, questions: list[str], batch_size: int = 64
) -> list[Reply]:
    """Step 1 alone: the question, then a header chosen among the valid ones (constrained
    greedy decoding through the trie), with the model's confidence in it; no text yet."""
    prompts = [trie.prompt(tokenizer, q, model.config.max_seq_len) for q in questions]
    named = in_batches(prompts, batch_size, lambda group: name_sources(model, trie, group))
    return [Reply(trie.sources[index], "", math.exp(logprob)) for index, logprob in named]


def precision(model: MiniTransformer) -> torch.autocast:
    """Answer in bfloat16 where the device computes it fast (utils.bf16_is_fast), as the model
    trained: twice as fast here, the same figures to within a point (experiments run 37);
    float32 elsewhere. Every forward pass of answering runs under it, so eval, ask.py and
    explain.py agree."""
    return utils.autocast(model.tok_emb.weight.device.type)


def in_batches(sequences: list, batch_size: int, run) -> list:
    """run(batch) on groups of at most batch_size sequences (of token ids, or HeaderTrees),
    shortest first (so a batch pads little); the results in input order."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    results: list = [None] * len(sequences)
    for start in range(0, len(order), batch_size):
        group = order[start : start + batch_size]
        for i, result in zip(group, run([sequences[i] for i in group])):
            results[i] = result
    return results


class BatchDecoder:
    """Several prompts decoded together, one new token per row per step, with one KV cache.

    Prompts of different lengths are padded on the left; the padding gets its own segment
    (so no real token attends to it) and each row its own positions (so its first token sits
    at position 0, as it would alone): every row computes what it would alone. A finished row
    leaves the batch (`advance`), so the batch shrinks as answers end.
    """

    def __init__(self, model: MiniTransformer, prompts: list[list[int]], pad_id: int):
        self.model, device = model, model.tok_emb.weight.device
        width = max(len(p) for p in prompts)
        pads = torch.tensor([width - len(p) for p in prompts], device=device)
        ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device)
        columns = torch.arange(width, device=device)
        self.segments = torch.where(columns < pads[:, None], -1, 0)  # -1: padding
        positions = (columns - pads[:, None]).clamp(min=0)
        self.cache: list = []
        with precision(model):
            self.logits = model(ids, cache=self.cache, positions=positions, segments=self.segments)[:, -1].float()
        self.next_positions = positions[:, -1:] + 1

    def advance(self, rows: list[int], next_ids: list[int]) -> None:
        """Go on with these rows only (indices into the current batch), feeding each its next
        token: `logits` then holds their next logits, (rows, vocab_size)."""
        self.keep(rows)
        if not rows:
            return
        self.segments = torch.cat([self.segments, torch.zeros_like(self.next_positions)], dim=1)
        ids = torch.tensor(next_ids, device=self.segments.device).unsqueeze(1)
        with precision(self.model):
            logits = self.model(ids, cache=self.cache, positions=self.next_positions, segments=self.segments)
        self.logits = logits[:, -1].float()
        self.next_positions = self.next_positions + 1

    def keep(self, rows: list[int]) -> None:
        """Go on with these rows only (indices into the current batch); all of them: nothing to do."""
        if len(rows) == len(self.logits):
            return
        index = torch.tensor(rows, dtype=torch.long, device=self.segments.device)
        self.cache[:] = [(k[index], v[index]) for k, v in self.cache]
        self.segments, self.next_positions, self.logits = self.segments[index], self.next_positions[index], self.logits[index]


def name_sources(model: MiniTransformer, trie: SourceTrie, prompts: list[list[int]]) -> list[tuple[int, float]]:
    """(source index, log-probability) per prompt: one constrained greedy step per header
    token, each token's probability renormalised over the allowed ones."""
    decoder = BatchDecoder(model, prompts, pad_id=0)
    named = [(-1, 0.0)] * len(prompts)
    nodes = [trie.root] * len(prompts)
    active = list(range(len(prompts)))  # the prompt of each row still in the batch
    while active:
        next_ids, still = [], []
        for row, (prompt, row_logits) in enumerate(zip(active, decoder.logits)):
            allowed = trie.allowed(nodes[prompt])
            scores = row_logits[allowed].log_softmax(-1)
            best = int(scores.argmax())
            nodes[prompt] = nodes[prompt][allowed[best]]
            named[prompt] = (nodes[prompt].get(None, -1), named[prompt][1] + float(scores[best]))
            if None not in nodes[prompt]:
                next_ids.append(allowed[best])
                still.append(row)
        decoder.advance(still, next_ids)
        active = [active[row] for row in still]
    return named


@torch.no_grad()
def source_logprobs(model: MiniTransformer, trie: SourceTrie, sequences: list[list[int]], batch_size: int = 64) -> list[float]:
    """log P(header | question) of each sequence of prompt + header, scored as name_sources
    decodes: each header token's probability renormalised over the tokens the trie allows there.
    The plain version, one row per header; `candidates` scores a question's headers together
    (tree_logprobs, tested equal to this)."""

    def run(group: list[list[int]]) -> list[float]:
        width = max(len(s) for s in group)
        ids = torch.tensor([s + [0] * (width - len(s)) for s in group], device=model.tok_emb.weight.device)
        headers = [s[trie.header_start(s) :] for s in group]
        before_header = torch.zeros_like(ids, dtype=torch.bool)  # the positions that predict a header token
        for row, (sequence, header) in enumerate(zip(group, headers)):
            before_header[row, len(sequence) - len(header) - 1 : len(sequence) - 1] = True
        with precision(model):
            logits = model(ids, only=before_header).float()  # causal: the padding on the right changes nothing before it
        return trie_logprobs(trie, logits, headers)

    return in_batches(sequences, batch_size, run)


@dataclass
class HeaderTree:
    """One row that scores many headers after one prompt: the prompt, then every distinct
    beginning of the headers once ("Tiger (" for all of Tiger's sections), each token after
    its parent, the token before it on its own path. A token sees only that path
    (`off_path`) and sits at the position it would have right after the prompt, so each
    header gets exactly the logits it would get alone, for a third of the tokens.

    >>> tree = HeaderTree.build([7, 8], [[1, 2], [1, 3]])
    >>> tree.ids, tree.positions, tree.parents, tree.rows
    ([7, 8, 1, 2, 3], [0, 1, 2, 3, 3], [-1, 0, 1, 2, 2], [[1, 2], [1, 2]])
    """

    ids: list[int]
    positions: list[int]
    parents: list[int]  # -1 for the first token
    rows: list[list[int]]  # for each header, the tokens whose logits predict its tokens
    headers: list[list[int]]

    @classmethod
    def build(cls, prompt: list[int], headers: list[list[int]]) -> HeaderTree:
        tree = cls(list(prompt), list(range(len(prompt))), list(range(-1, len(prompt) - 1)), [], headers)
        child: dict[tuple[int, int], int] = {}  # (a token's index, the next token) -> that token's index
        for header in headers:
            node, rows = len(prompt) - 1, []
            for depth, token in enumerate(header):
                rows.append(node)
                if (node, token) not in child:
                    child[node, token] = len(tree.ids)
                    tree.ids.append(token)
                    tree.positions.append(len(prompt) + depth)
                    tree.parents.append(node)
                node = child[node, token]
            tree.rows.append(rows)
        return tree

    def __len__(self) -> int:
        return len(self.ids)


def off_path(parents: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, T, T) from HeaderTrees' parents and positions, (B, T), padded with -1 and 0: True
    where a token must not see a key, anything but itself and its ancestors (padding sees
    only itself). A token's position is its depth in the tree, so one step per depth, each
    token taking its parent's path, covers every row of the batch at once.

    >>> tree = HeaderTree.build([7, 8], [[1, 2], [1, 3]])
    >>> off_path(torch.tensor([tree.parents]), torch.tensor([tree.positions]))[0, 4].int().tolist()
    [0, 0, 0, 1, 0]
    """
    sees = torch.eye(parents.shape[1], dtype=torch.bool, device=parents.device).repeat(len(parents), 1, 1)
    for depth in range(1, int(positions.max()) + 1):
        rows, tokens = torch.nonzero((positions == depth) & (parents >= 0), as_tuple=True)
        sees[rows, tokens] |= sees[rows, parents[rows, tokens]]
    return ~sees


@torch.no_grad()
def tree_logprobs(model: MiniTransformer, trie: SourceTrie, trees: list[HeaderTree], batch_size: int = 64) -> list[list[float]]:
    """source_logprobs of each tree's headers after its prompt, one row per tree (HeaderTree):
    the prompt and the headers' shared beginnings are computed once, not once per header.
    The same log-probabilities as source_logprobs (tested); for eval's natural and out-of-scope
    questions a third of the tokens and half the time (experiments/README.md, tenth round)."""
    device = model.tok_emb.weight.device

    def run(group: list[HeaderTree]) -> list[list[float]]:
        width = max(len(tree) for tree in group)
        ids = torch.tensor([tree.ids + [0] * (width - len(tree)) for tree in group], device=device)
        positions = torch.tensor([tree.positions + [0] * (width - len(tree)) for tree in group], device=device)
        parents = torch.tensor([tree.parents + [-1] * (width - len(tree)) for tree in group], device=device)
        blocked = off_path(parents, positions)[:, None]
        predicting = [[token for rows in tree.rows for token in rows] for tree in group]  # the logits each header needs
        needed = torch.zeros_like(ids, dtype=torch.bool)
        for row, tokens in enumerate(predicting):
            needed[row, tokens] = True
        with precision(model):
            logits = model(ids, positions=positions, blocked=blocked, only=needed).float()
        at = needed.flatten().cumsum(0) - 1  # where each (row, token)'s logits are in `logits`
        return [
            trie_logprobs(trie, logits[at[[row * width + token for token in tokens]]], tree.headers)
            for row, (tokens, tree) in enumerate(zip(predicting, group))
        ]

    return in_batches(trees, batch_size, run)


def trie_logprob(trie: SourceTrie, logits: torch.Tensor, header: list[int]) -> float:
    """log P(header) from the logits before each of its tokens, (len(header), vocab_size):
    each token's probability renormalised over the tokens the trie allows there."""
    node, total = trie.root, 0.0
    for row, token in zip(logits, header):
        allowed = trie.allowed(node)
        total += float(row[allowed].log_softmax(-1)[allowed.index(token)])
        node = node[token]
    return total


def trie_logprobs(trie: SourceTrie, logits: torch.Tensor, headers: list[list[int]]) -> list[float]:
    """trie_logprob of many headers at once, from their logits one after another (as many
    rows as they have tokens): a few tensor operations over all their tokens instead of a
    small softmax per token, four times faster (the per-token loop took about a tenth of
    eval's time). Tested equal to trie_logprob."""
    rows, allowed_ids = [], []  # (row, token) for every token the trie allows before each header token
    tokens, owners = [], []  # each header token, and which header it belongs to
    for index, header in enumerate(headers):
        node = trie.root
        for token in header:
            allowed = trie.allowed(node)
            rows += [len(tokens)] * len(allowed)
            allowed_ids += allowed
            tokens.append(token)
            owners.append(index)
            node = node[token]

    def as_tensor(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, device=logits.device)

    normaliser = grouped_log_sum_exp(logits[as_tensor(rows), as_tensor(allowed_ids)], as_tensor(rows), len(tokens))
    per_token = logits.gather(1, as_tensor(tokens)[:, None])[:, 0] - normaliser
    totals = torch.zeros(len(headers), dtype=torch.float64, device=logits.device)
    return totals.index_add_(0, as_tensor(owners), per_token.double()).tolist()


def grouped_log_sum_exp(values: torch.Tensor, groups: torch.Tensor, count: int) -> torch.Tensor:
    """log(sum(exp(values))) within each of count groups (groups[i]: the group of values[i]),
    less the group's largest value first so that exp can't overflow."""
    largest = torch.full((count,), float("-inf"), device=values.device).scatter_reduce(0, groups, values, "amax")
    summed = torch.zeros(count, device=values.device).index_add_(0, groups, (values - largest[groups]).exp())
    return summed.log() + largest


def recite(model: MiniTransformer, tokenizer: Tokenizer, contexts: list[list[int]], max_new_tokens: int, **sampling) -> list[str]:
    """The text after each context (a header, or question and header), until <|endoftext|>,
    max_new_tokens or max_seq_len."""
    end = tokenizer.special_id(END)
    decoder = BatchDecoder(model, contexts, pad_id=end)
    texts: list[list[int]] = [[] for _ in contexts]
    budgets = [min(max_new_tokens, model.config.max_seq_len - len(c)) for c in contexts]
    active = [i for i in range(len(contexts)) if budgets[i] > 0]
    decoder.keep(active)
    greedy = is_greedy(sampling)
    while active:
        if greedy:  # sample_next's greedy pick, for all rows at once
            next_ids = decoder.logits.argmax(dim=-1).tolist()
        else:
            next_ids = [sample_next(row_logits, **sampling) for row_logits in decoder.logits]
        still = []
        for row, (context, token) in enumerate(zip(active, next_ids)):
            if token != end:
                texts[context].append(token)
                if len(texts[context]) < budgets[context]:
                    still.append(row)
        decoder.advance(still, [next_ids[row] for row in still])
        active = [active[row] for row in still]
    return [tokenizer.decode(t).strip() for t in texts]


@torch.no_grad()
def closest_sources(model: MiniTransformer, tokenizer: Tokenizer, trie: SourceTrie, question: str, width: int = 5) -> list[str]:
    """The `width` likeliest valid headers for a question (beam search through the trie):
    what the model would have recited, to name the topics nearest to a declined question."""
    prompt = trie.prompt(tokenizer, question, model.config.max_seq_len)
    beams: list[tuple[float, list[int], dict]] = [(0.0, [], trie.root)]
    finished: list[tuple[float, int]] = []
    while beams:
        ids = torch.tensor([prompt + tokens for _, tokens, _ in beams])
        with precision(model):
            logprobs = model(ids)[:, -1].float().log_softmax(-1)
        candidates = []
        for (score, tokens, node), row in zip(beams, logprobs):
            allowed = trie.allowed(node)
            renormalised = row[allowed].log_softmax(-1)
            candidates += [(score + float(lp), tokens + [t], node[t]) for t, lp in zip(allowed, renormalised)]
        candidates.sort(key=lambda c: -c[0])
        beams = []
        for score, tokens, node in candidates[:width]:
            if None in node:
                finished.append((score, node[None]))
            if len(node) > (None in node):
                beams.append((score, tokens, node))
        finished.sort(key=lambda f: -f[0])
        if len(finished) >= width and beams[:1] and beams[0][0] <= finished[width - 1][0]:
            break  # a score only falls as a header grows: no open beam can overtake them now
    return [trie.sources[index] for _, index in finished[:width]]
