"""The train stage: teach the model the articles, and how to answer questions about them.

    python src/train.py

One shuffled stream mixes two kinds of example:
  - article passages (made by generate), "Jupiter (Orbit): Jupiter orbits the Sun ...", with
    loss on every token;
  - training Q&A pairs in the format of qa_format.py, cut a few tokens after their source header,
    with loss on the header and those tokens: "<|question|> What does the tiger eat?
    <|answer|>Tiger (Diet): Tigers are carnivores that".
Seeing each fact in the articles AND seeing how questions map to article sections is what
lets the model answer questions about facts whose Q&A pairs it never saw (the test split).
Examples are packed several to a row of max_seq_len tokens, kept apart by attention (no
example sees another, so two paraphrases of one fact never share a context), so almost no
compute goes into padding and every step is as large as benchmark.py's.
Keeps the weights with the best validation loss and, at the end, writes them to models/model.pt
with metrics/train.json and plots/train_loss.csv, as one set (utils.atomic_outputs). At every
evaluation it saves a resume state (models/.resume/train.pt: weights, optimizer, random
generators, progress), so a run killed at any instant, run again, continues from there and
ends with the same bytes as a run never stopped. While it trains, DVCLive logs the losses,
learning rate and tokens/s at every evaluation to plots/train/ (metrics.json,
plots/metrics/*.tsv), which `dvc exp show`, `dvc plots` and the VS Code extension read.
With train.processes above 1, or under `torchrun --nproc_per_node=N -m src.train`, N processes
share every batch and the first alone writes all of this (distributed.py).
"""

from __future__ import annotations

import argparse
import copy
import csv
import functools
import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

import torch
import torch.nn.functional as F
from dvclive import Live
from scmrepo.exceptions import SCMError  # DVC's git layer, which DVCLive uses
from tqdm import tqdm

from src import distributed, utils
from src.model import MiniTransformer, ModelConfig
from src.qa_format import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, END, Example, encode_pairs, encode_prompt, source_header
from src.tokenizer import Tokenizer

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # (inputs, targets, loss mask, segments), each (B, T)

# ---------------------------------------------------------------- data


def passage_example(tokenizer: Tokenizer, passage: dict[str, Any], max_len: int) -> Example:
    """One passage of an article as the model learns it: 'Tiger (Diet): Tigers are ...'
    with loss on every token. An answer naming that source recites exactly this text."""
    ids = tokenizer.encode(source_header(passage["title"], passage["section"])) + tokenizer.encode(" " + passage["text"])
    ids = ids[: max_len - 1] + [tokenizer.special_id(END)]
    return ids, [1] * len(ids)


def route_example(tokenizer: Tokenizer, pair: dict, max_len: int, answer_tokens: int) -> Example:
    """A training Q&A pair cut after its source header and the first `answer_tokens` tokens
    of the answer, with loss on those: what a Q&A pair teaches is the route, question ->
    source, and how its text starts. The rest of the text is the passage's, learned from
    the passage itself (passage_example) and recited from the header alone at answer time
    (qa.answer); rows a third as long make routing the cheap part of the stream."""
    ((ids, mask),) = encode_pairs(tokenizer, [pair], max_len)
    keep = mask.index(1) + len(tokenizer.encode(source_header(pair["title"], pair["section"]))) + answer_tokens
    return ids[:keep], mask[:keep]


def index_examples(tokenizer: Tokenizer, passage: dict[str, Any], max_len: int) -> list[Example]:
    """Each sentence of a passage as if it were a question, leading to the passage's source:
    '<|question|> tigers hunt alone at night <|answer|>Tiger (Diet):', loss on the header.
    Passages teach header -> text; these teach text -> header, so the words of a fact lead to
    its section even when no training question asks about it (the indexing step of Tay et al.
    2022, "Transformer Memory as a Differentiable Search Index"). Sentences are read as
    questions are, normalized, and nothing of the text is given at answer time."""
    header = tokenizer.encode(source_header(passage["title"], passage["section"]))
    examples = []
    for sentence in utils.split_sentences(passage["text"]):
        prompt = encode_prompt(tokenizer, sentence)
        ids = (prompt + header)[:max_len]
        examples.append((ids, ([0] * len(prompt) + [1] * len(header))[:max_len]))
    return examples


def qa_example(tokenizer: Tokenizer, pair: dict, max_len: int, params: dict) -> Example:
    """A Q&A pair as train.recitation says: cut a few tokens after its header (route_example)
    when answers recite the text from the header alone; whole when they are to continue after
    the question, which the model then learns from the Q&A pairs themselves."""
    if params["recitation"]:
        return route_example(tokenizer, pair, max_len, params["qa_answer_tokens"])
    ((ids, mask),) = encode_pairs(tokenizer, [pair], max_len)
    return ids, mask


def build_examples(passages: list[dict], pairs: list[dict], tokenizer: Tokenizer, params: dict, max_len: int) -> list[Example]:
    """The training stream: article passages, their sentences as index examples, and Q&A pairs,
    repeated as params say. With train.mask_prompt false, every token is learned, questions too."""
    examples: list[Example] = []
    for passage in passages:
        examples += [passage_example(tokenizer, passage, max_len)] * params["article_repeats"]
        examples += index_examples(tokenizer, passage, max_len) * params["index_repeats"]
    for pair in pairs:
        examples += [qa_example(tokenizer, pair, max_len, params)] * params["qa_repeats"]
    if not params["mask_prompt"]:
        examples = [(ids, [1] * len(ids)) for ids, _ in examples]
    return examples


def validation_examples(
    passages: list[dict], pairs: list[dict], tokenizer: Tokenizer, params: dict, max_len: int
) -> list[Example]:
    """Held-out routes (val questions -> their sources) and the passages they lead to, mixed
    in a fixed order: the validation loss measures both steps of answering (on answer tokens
    only, whatever train.mask_prompt says, so that runs with and without it compare)."""
    facts = {p["fact_id"] for p in pairs}
    examples = [qa_example(tokenizer, p, max_len, params) for p in pairs]
    examples += [passage_example(tokenizer, p, max_len) for p in passages if p["id"] in facts]
    random.Random(0).shuffle(examples)
    return examples


def pack_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Group examples (given by their lengths, in this order) into rows of at most `width`
    tokens, as indices. Each example goes to the fullest row it still fits in (best fit),
    so rows are nearly full: every step then computes on `width` tokens a row, not padding.

    >>> pack_rows([3, 5, 2, 4], width=6)
    [[0, 2], [1], [3]]
    """
    rows: list[list[int]] = []
    rows_with_room: list[list[int]] = [[] for _ in range(width + 1)]  # [n]: rows with n tokens to spare
    for index, length in enumerate(lengths):
        room = next((r for r in range(length, width + 1) if rows_with_room[r]), None)
        if room is None:
            rows.append([])
            row, room = len(rows) - 1, width
        else:
            row = rows_with_room[room].pop()
        rows[row].append(index)
        rows_with_room[room - length].append(row)
    return rows


def packed_batch(rows: list[list[Example]], width: int, pad_id: int, device: str) -> Batch:
    """Rows of examples -> (inputs, targets, loss mask, segments), each (B, width).
    `segments` numbers the examples of a row (-1 on padding), so attention keeps them apart
    (model.blocked_positions): each is learned exactly as if it had the row to itself."""
    inputs = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width))
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    for row, examples in enumerate(rows):
        start = 0
        for segment, (ids, loss_mask) in enumerate(examples):
            end = start + len(ids) - 1
            inputs[row, start:end] = torch.tensor(ids[:-1])
            targets[row, start:end] = torch.tensor(ids[1:])
            mask[row, start:end] = torch.tensor(loss_mask[1:], dtype=torch.float)
            segments[row, start:end] = segment
            start = end
    return inputs.to(device), targets.to(device), mask.to(device), segments.to(device)


def pack(examples: list[Example], width: int) -> list[list[Example]]:
    """The examples packed into rows of at most `width` tokens (pack_rows), the longest
    placed first so that the short ones fill the gaps (on this project's data rows come out
    92% full, against 90% in the given order). Examples of equal length keep their order."""
    longest_first = sorted(examples, key=lambda example: -len(example[0]))
    return [[longest_first[i] for i in row] for row in pack_rows([len(ids) - 1 for ids, _ in longest_first], width)]


def batches_forever(
    examples: list[Example], batch_size: int, width: int, seed: int, pad_id: int, device: str, skip: int = 0
) -> Iterator[Batch]:
    """Endless full batches: on every pass a fresh seeded shuffle of all examples (which
    decides which of equal length share a row), packed into rows, the rows shuffled again
    (the last short batch of a pass is dropped). The first `skip` batches are passed over
    unbuilt, so a resumed run goes on in the order where the killed one stopped."""
    rng = random.Random(seed)
    while True:
        shuffled = examples[:]
        rng.shuffle(shuffled)
        rows = pack(shuffled, width)
        rng.shuffle(rows)
        for start in range(0, len(rows) - batch_size + 1, batch_size):
            if skip:
                skip -= 1
            else:
                yield packed_batch(rows[start : start + batch_size], width, pad_id, device)


# ---------------------------------------------------------------- optimisation


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the tokens where mask is 1 (0, not NaN, if there are none)."""
    per_token = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    return (per_token * mask.flatten()).sum() / mask.sum().clamp(min=1)


def batch_loss(model: MiniTransformer, batch: Batch) -> torch.Tensor:
    """masked_loss of the model on a batch, computing logits only where the mask is 1 (the
    same number, a test checks: prompts and padding never reach the output layer)."""
    inputs, targets, mask, segments = batch
    learned = mask.bool()
    logits = model(inputs, segments=segments, only=learned)
    return F.cross_entropy(logits.float(), targets[learned], reduction="sum") / learned.sum().clamp(min=1)


def lr_at(step: int, params: dict) -> float:
    """Linear warmup, then cosine decay from lr to min_lr at max_steps."""
    if step < params["warmup_steps"]:
        return params["lr"] * (step + 1) / params["warmup_steps"]
    progress = (step - params["warmup_steps"]) / max(1, params["max_steps"] - params["warmup_steps"])
    return params["min_lr"] + 0.5 * (params["lr"] - params["min_lr"]) * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: MiniTransformer, params: dict) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms and biases)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": params["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel updates every tensor (the step takes 4.5 ms instead of 15 ms here: experiments/README.md)
    return torch.optim.AdamW(groups, lr=params["lr"], betas=(0.9, 0.95), fused=True)


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, lr: float, params: dict, device: str
) -> float:
    """One optimisation step on one batch at learning rate `lr`; returns the batch's loss.
    Under torchrun this process learns from its share of the batch, weighted by its part of the
    batch's learned tokens: the shares' losses and gradients then add up to the whole batch's
    mean over its learned tokens, exactly what one process computes, however unevenly the
    tokens fall (alone, the weight is 1)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    mine = distributed.share(batch)
    with utils.autocast(device, params["bf16"]):
        loss = batch_loss(model, mine) * (mine[2].sum() / batch[2].sum().clamp(min=1))
    optimizer.zero_grad(set_to_none=True)
    (loss * distributed.world_size()).backward()  # DDP averages the processes' gradients: N times that is their sum
    torch.nn.utils.clip_grad_norm_(model.parameters(), params["grad_clip"])  # one bad batch cannot wreck the weights
    optimizer.step()
    return distributed.total(loss.detach()).item()


@torch.no_grad()
def evaluate(model: MiniTransformer, batches: list[Batch], device: str, bf16: bool) -> float:
    """Mean loss over the validation batches with dropout off (eval mode); leaves the model training."""
    model.eval()
    losses = []
    for batch in batches:
        with utils.autocast(device, bf16):
            losses.append(batch_loss(model, batch).item())
    model.train()
    return sum(losses) / len(losses)


@dataclass
class Progress:
    """How far a run has come: with the weights, the optimizer and the random generators,
    what a resume state holds."""

    step: int = 0  # steps done
    history: list[dict] = field(default_factory=list)  # a row per evaluation: step, train_loss, val_loss
    speeds: list[float] = field(default_factory=list)  # tokens/s at each evaluation (DVCLive's curve; a timing)
    best_val: float = math.inf
    best_step: int = 0
    best_weights: dict | None = None  # the model at best_val: what models/model.pt gets


def fit(
    model: MiniTransformer,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[Batch],
    val_batches: list[Batch],
    params: dict,
    device: str,
    progress: Progress,
    live: Live | None,
    save_state: Callable[[], None],
) -> None:
    """The training loop, from progress.step to max_steps: every eval_interval steps (and after
    the last) the validation loss, next to the mean training loss since the previous evaluation,
    logged to DVCLive as it runs; the weights kept whenever it is the lowest so far; then
    save_state(), so that a run killed later continues from this evaluation. Under torchrun each
    process runs it on its share of every batch (train_step); only the first logs (live None in the others)."""
    trainee = distributed.wrap(model)
    for row, speed in zip(progress.history, progress.speeds):  # a resumed run's earlier rows: DVC deleted plots/train
        log_progress(live, row, lr_at(row["step"] - 1, params), speed)
    first_step, window_losses, tokens_seen, real_tokens = progress.step, [], 0, 0
    start = time.perf_counter()
    bar = tqdm(range(first_step, params["max_steps"]), desc="train", mininterval=2.0, disable=not distributed.is_main())
    for step in bar:
        batch = next(batches)  # the global batch: every process builds it, each learns from its share
        loss = train_step(trainee, optimizer, batch, lr_at(step, params), params, device)
        window_losses.append(loss)
        tokens_seen += batch[0].numel()  # positions computed, as benchmark.py counts them
        real_tokens += int((batch[3] >= 0).sum())  # of which examples, not padding
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_seen / (time.perf_counter() - start):.0f}")
        if (step + 1) % params["eval_interval"] == 0 or step + 1 == params["max_steps"]:
            val_loss = evaluate(model, val_batches, device, params["bf16"])
            row = {"step": step + 1, "train_loss": sum(window_losses) / len(window_losses), "val_loss": val_loss}
            progress.history.append(row)
            progress.speeds.append(tokens_seen / (time.perf_counter() - start))
            log_progress(live, row, lr_at(step, params), progress.speeds[-1])
            window_losses = []
            if val_loss < progress.best_val:
                progress.best_val, progress.best_step = val_loss, step + 1
                progress.best_weights = copy.deepcopy(model.state_dict())
            progress.step = step + 1
            save_state()
    elapsed = time.perf_counter() - start
    print(
        f"train: {params['max_steps'] - first_step} steps in {elapsed:.0f}s ({tokens_seen / elapsed:.0f} tokens/s, "
        f"{real_tokens / max(1, tokens_seen):.0%} of them example tokens, not padding), "
        f"best val loss {progress.best_val:.4f}"
    )


def log_progress(live: Live | None, row: dict, lr: float, tokens_per_s: float) -> None:
    """One evaluation's numbers to DVCLive: a row of each step-wise curve (its plots/metrics/*.tsv)
    and its summary metrics.json, rewritten now, so `dvc exp show` and the VS Code extension
    follow a running experiment. None: a process that writes nothing (not the first under torchrun)."""
    if live is None:
        return
    live.step = row["step"]
    for name in ("train_loss", "val_loss"):
        live.log_metric(name, round(row[name], 5))
    live.log_metric("lr", lr)
    live.log_metric("tokens_per_s", round(tokens_per_s))
    live.next_step()


# ---------------------------------------------------------------- params, inputs and outputs

TRAIN_KEYS = {  # key: (type, the least value allowed)
    "seed": (int, None),
    "max_steps": (int, 1),
    "batch_size": (int, 1),
    "lr": (float, 0),
    "min_lr": (float, 0),
    "warmup_steps": (int, 0),
    "weight_decay": (float, 0),
    "grad_clip": (float, 0),
    "eval_interval": (int, 1),
    "eval_batches": (int, 1),
    "qa_repeats": (int, 0),
    "qa_answer_tokens": (int, 0),
    "article_repeats": (int, 0),
    "index_repeats": (int, 0),
    "bf16": (bool, None),
    "mask_prompt": (bool, None),
    "recitation": (bool, None),
    "processes": (int, 1),
}
# The model section holds every ModelConfig field but vocab_size, which is the tokenizer's, and
# recitation, which is train's (the config carries it into the checkpoint, for qa.answer).
MODEL_KEYS = {
    f.name: get_type_hints(ModelConfig)[f.name] for f in fields(ModelConfig) if f.name not in ("vocab_size", "recitation")
}


def read_params(path: str) -> tuple[dict, ModelConfig]:
    """The train section and the model's shape, each section read once and checked before any
    data is loaded, so a mistake in params.yaml fails at once, in one line. The config keeps
    ModelConfig's default vocab_size until the tokenizer is loaded."""
    train_section = utils.load_params("train", path, known=TRAIN_KEYS)
    params = {key: utils.require(train_section, key, kind, at_least) for key, (kind, at_least) in TRAIN_KEYS.items()}
    processes = distributed.world_size() if distributed.launched() else params["processes"]
    if params["batch_size"] % processes:
        raise utils.UserError(
            f"{train_section.where}: key 'batch_size' ({params['batch_size']}) must divide by the number of "
            f"processes ({processes}): each takes an equal share of every batch"
        )
    model_section = utils.load_params("model", path, known=MODEL_KEYS)
    model_params = {key: utils.require(model_section, key, kind) for key, kind in MODEL_KEYS.items()}
    try:
        return params, ModelConfig(**model_params, recitation=params["recitation"])
    except ValueError as err:  # ModelConfig's own checks
        raise utils.UserError(f"{model_section.where}: {err}") from None


def read_examples(
    args: argparse.Namespace, tokenizer: Tokenizer, params: dict, max_len: int, pad_id: int, device: str
) -> tuple[list[dict], list[Example], list[Batch]]:
    """The passages, the training stream, and the validation batches (the same ones at every
    evaluation, so that their losses compare)."""
    passages = utils.read_passages(args.passages)
    train_examples = build_examples(passages, utils.read_pairs(args.train), tokenizer, params, max_len)
    val_examples = validation_examples(passages, utils.read_pairs(args.val), tokenizer, params, max_len)
    width = max_len - 1  # a row holds max_seq_len positions
    val_rows = pack(val_examples, width)
    val_batches = [
        packed_batch(val_rows[i : i + params["batch_size"]], width, pad_id, device)
        for i in range(0, len(val_rows), params["batch_size"])
    ][: params["eval_batches"]]
    if len(pack(train_examples, width)) < params["batch_size"] or not val_batches:
        raise utils.UserError(
            f"{args.train}: too few examples to fill batch_size {params['batch_size']} rows (or empty {args.val})"
        )
    return passages, train_examples, val_batches


def save_checkpoint(
    model: MiniTransformer,
    config: ModelConfig,
    tokenizer_json: str,
    args: argparse.Namespace,
    step: int,
    val_loss: float,
    passages: list[dict],
) -> None:
    """Weights, config, the tokenizer's saved text (so the checkpoint works anywhere on its own),
    and the names of the sources the model learned (not their text): an answer may only name
    one of these (qa.load_model, which checks all of it on loading)."""
    sources = [source_header(p["title"], p["section"]) for p in passages]
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model.state_dict(),
        "config": asdict(config),
        "tokenizer": tokenizer_json,
        "step": step,
        "val_loss": val_loss,
        "sources": sources,
    }
    with utils.atomic_path(args.checkpoint) as tmp, tmp.open("wb") as f:
        torch.save(state, f)  # through a file object: a path would put the random temp name inside the file


def write_outputs(history: list[dict], best_val: float, model: MiniTransformer, args: argparse.Namespace) -> None:
    """The loss curve and the summary metrics that dvc.yaml declares as this stage's plot and metrics."""
    with utils.atomic_path(args.plot) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "train_loss", "val_loss"])
        writer.writeheader()
        writer.writerows({k: round(v, 5) for k, v in row.items()} for row in history)
    utils.write_json(
        args.metrics,
        {
            "best_val_loss": round(best_val, 5),
            "final_train_loss": round(history[-1]["train_loss"], 5),
            "steps": history[-1]["step"],
            "num_params": model.num_params(),
        },
    )


def open_live(directory: Path) -> Live:
    """DVCLive, writing only into `directory`: no dvc.yaml of its own and no git commit
    (dvc.yaml declares the folder; `dvc exp run` records the experiment)."""
    try:
        return Live(dir=str(directory), dvcyaml=None, save_dvc_exp=False)
    except SCMError as err:  # DVCLive asks git for the current commit (treeverse/dvclive#522)
        raise utils.UserError(f"{directory}: DVCLive needs a git commit to log to ({err}): git commit, then run again") from None


# ---------------------------------------------------------------- resuming

# this stage's code, as dvc.yaml lists it
CODE = ("train.py", "distributed.py", "model.py", "qa_format.py", "tokenizer.py", "utils.py")


def resume_path(args: argparse.Namespace) -> Path:
    """Beside the checkpoint, in a folder that is no output of the stage: DVC deletes a stage's
    outputs before it runs it."""
    return Path(args.checkpoint).parent / ".resume" / "train.pt"


def run_key(args: argparse.Namespace, params: dict, config: ModelConfig, device: str) -> str:
    """A fingerprint of everything that decides the run: the train and model params, the bytes
    of the inputs and of the stage's code, torch's version, the device and the number of processes."""
    decisive = [params, asdict(config), torch.__version__, device, distributed.world_size()]
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode())
    for path in (args.passages, args.train, args.val, args.tokenizer, *(Path(__file__).with_name(name) for name in CODE)):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def save_resume_state(path: Path, key: str, model: MiniTransformer, optimizer: torch.optim.Optimizer, progress: Progress) -> None:
    """All the loop needs to go on as if it had never stopped, written atomically (a kill while
    it is written leaves the previous state)."""
    rng = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    state = {"key": key, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng, "progress": vars(progress)}
    with utils.atomic_path(path) as tmp, tmp.open("wb") as f:
        torch.save(state, f)


def resume(path: Path, key: str, model: MiniTransformer, optimizer: torch.optim.Optimizer) -> Progress:
    """The progress of the resume state a killed run of this key left, with its weights,
    optimizer and random generators restored; without one, a fresh start. A state of another
    run (params, inputs or code changed since) is deleted, once every process has read it."""
    if not path.exists():
        return Progress()
    try:
        state = torch.load(path, weights_only=True)
        same_run = state["key"] == key
    except Exception:  # a resume state is only a cache: one that can't be read is thrown away
        same_run = False
    distributed.barrier()
    if not same_run:
        print(f"train: {path} is not a resume state of this run (params, inputs or code changed): starting afresh")
        if distributed.is_main():
            shutil.rmtree(path.parent)
        return Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    random.setstate(state["rng"]["python"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    print(f"train: resuming at step {state['progress']['step']} from {path}")
    return Progress(**state["progress"])


# ---------------------------------------------------------------- main


def train(args: argparse.Namespace) -> None:
    """The stage top to bottom: params, data, model, the training loop (resumed where a killed
    run of the same key stopped), then the outputs, replaced as one set. With train.processes
    above 1 it runs again under torchrun; there every process trains, and the first writes."""
    outputs = (args.checkpoint, args.metrics, args.plot)
    if distributed.is_main():
        utils.recover_outputs(*outputs)
    params, config = read_params(args.params)
    if params["processes"] > 1 and not distributed.launched():
        distributed.relaunch("src.train", params["processes"])
    utils.seed_everything(params["seed"])
    device = utils.pick_device()
    try:
        tokenizer = Tokenizer.load(args.tokenizer)
    except ValueError as err:  # the message names the file
        raise utils.UserError(str(err)) from None
    config = replace(config, vocab_size=tokenizer.vocab_size)
    tokenizer_json = tokenizer.dumps()  # what the checkpoint carries, made once for every save
    pad_id = tokenizer.special_id(END)
    max_len = config.max_seq_len + 1  # inputs and targets are shifted by one
    passages, train_examples, val_batches = read_examples(args, tokenizer, params, max_len, pad_id, device)

    model = MiniTransformer(config).to(device)
    optimizer = make_optimizer(model, params)
    state_path, key = resume_path(args), run_key(args, params, config, device)
    progress = resume(state_path, key, model, optimizer)
    batches = batches_forever(
        train_examples, params["batch_size"], config.max_seq_len, params["seed"], pad_id, device, skip=progress.step
    )
    precision = "bf16 autocast" if params["bf16"] and utils.bf16_is_fast(device) else "float32"
    print(f"train: {model.num_params() / 1e6:.2f}M parameters, {len(train_examples)} examples, device {device}, {precision}")
    train_loop = functools.partial(fit, model, optimizer, batches, val_batches, params, device, progress)
    if not distributed.is_main():
        train_loop(live=None, save_state=lambda: None)
        return
    with open_live(args.live_dir or Path(args.plot).parent / "train") as live:
        train_loop(live, save_state=lambda: save_resume_state(state_path, key, model, optimizer, progress))
        del live.summary["tokens_per_s"]  # a timing: shown while training runs, not kept (same params, same bytes)
    if progress.best_weights is None:
        raise utils.UserError(f"{args.params}: train: the validation loss was never a number (training diverged): lower lr")
    model.load_state_dict(progress.best_weights)
    with utils.atomic_outputs(*outputs):
        save_checkpoint(model, config, tokenizer_json, args, progress.best_step, progress.best_val, passages)
        write_outputs(progress.history, progress.best_val, model, args)
    shutil.rmtree(state_path.parent)  # done: the next run starts afresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", default="data/processed/passages.jsonl")
    parser.add_argument("--train", default="data/splits/train.jsonl")
    parser.add_argument("--val", default="data/splits/val.jsonl")
    parser.add_argument("--tokenizer", default="models/tokenizer.json")
    parser.add_argument("--checkpoint", default="models/model.pt")
    parser.add_argument("--metrics", default="metrics/train.json")
    parser.add_argument("--plot", default="plots/train_loss.csv")
    parser.add_argument("--live-dir", help="DVCLive's folder of step-wise logs (default: 'train' beside --plot)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    with distributed.process_group():
        train(args)


if __name__ == "__main__":
    utils.run_cli(main)
