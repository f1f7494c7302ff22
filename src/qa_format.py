"""The question/answer token format the model learns and answers in.

A Q&A example is laid out as

    <|question|> What does the tiger eat? <|answer|> Tiger (Diet): Tigers are carnivores ... <|endoftext|>

and the model is trained to produce only the part after <|answer|> (the question too, with
train.mask_prompt false). The answer opens with its source, the same "Tiger (Diet):" header
that starts that passage's text in training (train.passage_example). The checkpoint file's
format is named here too: train writes it, qa.load_model reads it.

Train imports this module, not the answering code (qa.py, verify.py), so that changing how
the model answers reruns recite, calibrate and eval, never training.
"""

from __future__ import annotations

import torch

from src import utils
from src.tokenizer import ANSWER, QUESTION, Tokenizer
from src.tokenizer import END_OF_TEXT as END

Example = tuple[list[int], list[int]]  # (token ids, loss mask)

CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "minillm-checkpoint", 2  # version 1 stored the tokenizer's path


def source_header(title: str, heading: str) -> str:
    """The header naming an article section, the start of its training text and of an answer.

    >>> source_header("Tiger", "Diet")
    'Tiger (Diet):'
    """
    return f"{title} ({heading}):"


def source_title(source: str) -> str:
    """The article a source header names.

    >>> source_title("Mercury (planet) (Orbit):")
    'Mercury (planet)'
    """
    return source.rsplit(" (", 1)[0]


def split_source(reply: str) -> tuple[str, str]:
    """Split a generated reply into (source header, answer); ("", reply) if it names no source.

    >>> split_source("Mercury (planet) (Orbit): Mercury orbits the Sun.")
    ('Mercury (planet) (Orbit):', 'Mercury orbits the Sun.')
    """
    source, colon, rest = reply.partition("):")
    return (source + colon, rest.strip()) if colon else ("", reply.strip())


def encode_prompt(tokenizer: Tokenizer, question: str) -> list[int]:
    """Token ids of the prompt: the model continues it with the answer."""
    return (
        [tokenizer.special_id(QUESTION)]
        + tokenizer.encode(" " + utils.normalize_question(question))
        + [tokenizer.special_id(ANSWER)]
    )


def encode_example(tokenizer: Tokenizer, question: str, source: str, answer: str) -> Example:
    """(ids, loss_mask): the mask is 1 on the source, the answer and the end token, 0 on the prompt."""
    prompt = encode_prompt(tokenizer, question)
    target = tokenizer.encode(source) + tokenizer.encode(" " + answer.strip()) + [tokenizer.special_id(END)]
    return prompt + target, [0] * len(prompt) + [1] * len(target)


def encode_pairs(tokenizer: Tokenizer, pairs: list[dict], max_len: int) -> list[Example]:
    """encode_example for each Q&A record, cut to max_len tokens (the context plus one)."""
    examples = [encode_example(tokenizer, p["question"], source_header(p["title"], p["section"]), p["answer"]) for p in pairs]
    return [(ids[:max_len], mask[:max_len]) for ids, mask in examples]


def to_batch(examples: list[Example], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a list of examples into (inputs, targets, loss mask), each (B, T)."""
    width = max(len(ids) for ids, _ in examples) - 1
    inputs = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width))
    for row, (ids, loss_mask) in enumerate(examples):
        n = len(ids) - 1
        inputs[row, :n] = torch.tensor(ids[:-1])
        targets[row, :n] = torch.tensor(ids[1:])
        mask[row, :n] = torch.tensor(loss_mask[1:], dtype=torch.float)
    return inputs.to(device), targets.to(device), mask.to(device)
