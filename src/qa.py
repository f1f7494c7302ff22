"""The question/answer format the model learns, and answering a question with a trained model.

A Q&A example is laid out as

    <|question|> What does the tiger eat? <|answer|> Tiger (Diet): Tigers are carnivores ... <|endoftext|>

and the model is trained to produce only the part after <|answer|>. The answer opens with
its source, the same "Tiger (Diet):" header that starts that section's text in training
(train.article_chunks). So the model first names the section it will recall, and then the
text it learned after that header is the likeliest continuation: answering a question
becomes reciting from memory (recitation, as in Sun et al. 2023, "Recitation-Augmented
Language Models"). The source is shown to the user and left out of the scored answer.
Shared by train, eval and ask.
"""
from __future__ import annotations

from pathlib import Path

import torch

from model import MiniTransformer, ModelConfig
from tokenizer import Tokenizer

QUESTION, ANSWER, END = "<|question|>", "<|answer|>", "<|endoftext|>"
Example = tuple[list[int], list[int]]  # (token ids, loss mask)


def source_header(title: str, heading: str) -> str:
    """The header naming an article section, the start of its training text and of an answer.

    >>> source_header("Tiger", "Diet")
    'Tiger (Diet):'
    """
    return f"{title} ({heading}):"


def split_source(reply: str) -> tuple[str, str]:
    """Split a generated reply into (source header, answer); ("", reply) if it names no source.

    >>> split_source("Mercury (planet) (Orbit): Mercury orbits the Sun.")
    ('Mercury (planet) (Orbit):', 'Mercury orbits the Sun.')
    """
    source, colon, rest = reply.partition("):")
    return (source + colon, rest.strip()) if colon else ("", reply.strip())


def encode_prompt(tokenizer: Tokenizer, question: str) -> list[int]:
    """Token ids of the prompt: the model continues it with the answer."""
    return [tokenizer.special_id(QUESTION)] + tokenizer.encode(" " + question.strip()) + [tokenizer.special_id(ANSWER)]


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


def load_model(checkpoint: str | Path, device: str = "cpu") -> tuple[MiniTransformer, Tokenizer]:
    """Load a checkpoint written by train.py (weights only: no code is unpickled)."""
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    model = MiniTransformer(ModelConfig(**state["config"]))
    model.load_state_dict(state["model"])
    model.to(device).eval()
    return model, Tokenizer.load(state["tokenizer"])


def reply(model: MiniTransformer, tokenizer: Tokenizer, question: str, max_new_tokens: int = 110, **sampling) -> str:
    """The model's full reply to one question, source header included (greedy unless sampling options are given)."""
    prompt = encode_prompt(tokenizer, question)
    new_ids = model.generate(prompt, max_new_tokens, stop_id=tokenizer.special_id(END), **sampling)
    return tokenizer.decode(new_ids).strip()
