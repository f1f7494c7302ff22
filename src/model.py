"""A tiny decoder-only transformer (GPT-style), small enough to read in ten minutes.

ids (B, T) -> token embeddings -> num_layers x Block -> LayerNorm -> logits (B, T, V)

Each Block is pre-norm: x + attention(norm(x)), then x + feed_forward(norm(x)).
Attention is causal: position t only sees positions <= t, so the model learns to
predict the next token. Positions enter as rotary embeddings (RoPE): queries and keys
are rotated by an angle that grows with the position, so attention depends on how far
apart two tokens are, not where they sit. A sentence learned at the start of an article
chunk is then the same pattern when it comes after a question. (`positions="learned"`
instead adds a learned vector per position to the token embedding, as GPT-2 does: the
model then has to learn each pattern at each place it sits.) The output layer shares
its weights with the token embedding (weight tying), which saves vocab_size * emb_dim
parameters.

This file imports nothing from the project, so it can be read and reused on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

LayerCache = tuple[torch.Tensor, torch.Tensor]  # one layer's (keys, values), each (B, nh, S, hs)
KVCache = list[LayerCache]  # one per layer
Rotation = tuple[torch.Tensor, torch.Tensor]  # cos and sin of each token's rotary angles


@dataclass
class ModelConfig:
    """The model's shape. The defaults are params.yaml's model section and the tokenizer's
    vocab_size; the config checks itself, so every way of building a model gets one error."""

    vocab_size: int = 4096
    max_seq_len: int = 128  # longest sequence the model can see (question + answer)
    emb_dim: int = 256
    num_layers: int = 4
    num_heads: int = 4
    dropout: float = 0.0
    positions: str = "rotary"  # or "learned": a table of one learned vector per position (GPT-2)
    # How the model was taught to answer (train.recitation); not used in this file, only kept in
    # the checkpoint: True, qa.answer recites the text from the source header alone; False, it
    # continues after the question and the header.
    recitation: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "max_seq_len", "emb_dim", "num_layers", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.positions not in ("rotary", "learned"):
            raise ValueError(f"positions must be 'rotary' or 'learned', got {self.positions!r}")
        if self.emb_dim % self.num_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.positions == "rotary" and (self.emb_dim // self.num_heads) % 2:
            raise ValueError(
                f"emb_dim ({self.emb_dim}) must be divisible by num_heads ({self.num_heads}) into an even "
                "number of channels per head (rotary positions turn them in pairs)"
            )


def rotary_angles(head_dim: int, max_seq_len: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of each position's rotation angles, (max_seq_len, head_dim).

    Channel pair (i, i + head_dim/2) turns base^(-2i/head_dim) radians per position: fast
    for the first pairs (fine position), slow for the last (coarse position).
    """
    speeds = base ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(max_seq_len).float(), speeds).repeat(1, 2)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + head_dim/2) of x (B, nh, T, hs) by their angles (T, hs)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # stay in bfloat16 under autocast
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def blocked_positions(T: int, S: int, segments: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """Which key positions each query must not see: (T, S), or (B, 1, T, S) with segments.

    The newest T of S positions are the queries. A query never sees the future. With
    `segments` (B, S), the id of the example each position belongs to, it also never sees
    another example: several examples packed in one row (training) or padding beside a
    prompt (batched decoding) then give each example exactly what it would get alone, as
    rotary positions depend only on how far apart two tokens are.
    """
    blocked = torch.ones(T, S, dtype=torch.bool, device=device).triu(S - T + 1)
    if segments is not None:
        blocked = blocked | (segments[:, None, -T:, None] != segments[:, None, None, :])
    return blocked


def positions_within(segments: torch.Tensor) -> torch.Tensor:
    """Each token's position inside its own example, (B, S), from `segments` (B, S) as
    blocked_positions takes them. Learned positions need it: a packed example must sit at
    the positions it would have alone (rotary ones see only distances, so any start will do).

    >>> positions_within(torch.tensor([[0, 0, 0, 1, 1, -1]]))
    tensor([[0, 1, 2, 0, 1, 0]])
    """
    columns = torch.arange(segments.shape[-1], device=segments.device).expand_as(segments)
    starts = torch.ones_like(segments, dtype=torch.bool)
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return columns - torch.where(starts, columns, 0).cummax(dim=-1).values


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor, dropout: float = 0.0, watch: Callable | None = None
) -> torch.Tensor:
    """Each query takes a weighted mean of the values of the keys it may see (not `blocked`),
    weighted by softmax(query . key / sqrt(head_dim)). `watch`, if given, is shown those
    weights (B, nh, T, S): explain.py draws them.

    q (B, nh, T, hs) are the newest T positions; k, v (B, nh, S, hs) are all S positions so
    far (S > T when decoding with a KV cache). Written out rather than calling
    F.scaled_dot_product_attention: at these sizes, its CPU kernel's forward and backward
    take about 3x as long in bfloat16 (benchmark.py times both).
    """
    scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5  # (B, nh, T, S)
    weights = F.dropout(scores.masked_fill(blocked, float("-inf")).softmax(dim=-1), dropout)
    if watch is not None:
        watch(weights)
    return weights @ v


class CausalSelfAttention(nn.Module):
    """Multi-head attention where each position attends only to itself and the past."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.emb_dim, 3 * config.emb_dim, bias=False)
        self.proj = nn.Linear(config.emb_dim, config.emb_dim, bias=False)
        self.dropout = config.dropout
        self.watch: Callable | None = None  # set it to see this layer's attention weights (attend)

    def forward(
        self, x: torch.Tensor, rotation: Rotation | None, blocked: torch.Tensor, cache: LayerCache | None = None
    ) -> tuple[torch.Tensor, LayerCache]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs): each head works on its own slice of the channels
        q, k, v = (t.view(B, T, self.num_heads, C // self.num_heads).transpose(1, 2) for t in (q, k, v))
        if rotation is not None:  # rotary positions (learned ones are already in x)
            q, k = rotate(q, *rotation), rotate(k, *rotation)
        if cache is not None:
            # Decoding one new token: it may attend to every cached (earlier) position.
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        y = attend(q, k, v, blocked, self.dropout if self.training else 0.0, self.watch)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-join the heads
        return self.proj(y), (k, v)


class FeedForward(nn.Module):
    """SwiGLU feed-forward (as in LLaMA): a gated MLP applied to each position separately."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        hidden = 4 * config.emb_dim
        self.gate = nn.Linear(config.emb_dim, hidden, bias=False)
        self.up = nn.Linear(config.emb_dim, hidden, bias=False)
        self.down = nn.Linear(hidden, config.emb_dim, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


class Block(nn.Module):
    """One transformer layer: attention mixes positions, the feed-forward mixes channels."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(config.emb_dim)
        self.attn = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.emb_dim)
        self.ff = FeedForward(config)

    def forward(
        self, x: torch.Tensor, rotation: Rotation | None, blocked: torch.Tensor, cache: LayerCache | None = None
    ) -> tuple[torch.Tensor, LayerCache]:
        attn_out, new_cache = self.attn(self.norm1(x), rotation, blocked, cache)
        x = x + attn_out
        x = x + self.ff(self.norm2(x))
        return x, new_cache


class MiniTransformer(nn.Module):
    """The language model: token ids in, next-token logits out."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.emb_dim)
        if config.positions == "learned":
            self.pos_emb = nn.Embedding(config.max_seq_len, config.emb_dim)  # one vector per position
        else:
            cos, sin = rotary_angles(config.emb_dim // config.num_heads, config.max_seq_len)
            self.register_buffer("cos", cos, persistent=False)  # fixed, not learned: not in the checkpoint
            self.register_buffer("sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.emb_dim)
        self.lm_head = nn.Linear(config.emb_dim, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        self.lm_head.weight = self.tok_emb.weight  # weight tying (after init, so both use the embedding's init)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # Xavier keeps activations at a similar scale through every linear layer;
        # small normal embeddings start all tokens near each other.
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of trainable parameters (the tied output layer is counted once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        ids: torch.Tensor,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
        only: torch.Tensor | None = None,
        blocked: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, vocab_size); with `only`, a (B, T) boolean mask, the
        logits of those positions alone, (N, vocab_size): training needs no others.

        With `cache` (a list that this call fills in), the model also returns the keys and
        values of every layer, so the next call only has to process the newest token.
        `positions` (T,) or (B, T) are the tokens' positions, by default the ones after the
        cached ones. `segments` (B, cached + T) keeps apart the examples that share a row
        (see blocked_positions); with learned positions, each of them then also counts its
        positions from 0 by default (positions_within). `blocked` (B, 1, T, cached + T) says
        which keys each query must not see where the causal order and segments can't (a tree
        of headers after one prompt, each token seeing only its own path: qa.tree_logprobs).
        """
        B, T = ids.shape
        past = cache[0][0].shape[2] if cache else 0  # positions already in the KV cache
        if positions is None and segments is not None and self.config.positions == "learned":
            positions = positions_within(segments)[:, -T:]
        if positions is None:
            positions = torch.arange(past, past + T, device=ids.device)
        if int(positions.max()) >= self.config.max_seq_len:
            raise ValueError(f"position {int(positions.max())} is past max_seq_len={self.config.max_seq_len}")
        if blocked is None:
            blocked = blocked_positions(T, past + T, segments, ids.device)
        x, rotation = self.add_positions(self.tok_emb(ids), positions)
        x = self.drop(x)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            layer_cache = cache[i] if cache is not None and i < len(cache) else None
            x, new_layer_cache = block(x, rotation, blocked, layer_cache)
            if cache is not None:
                cache[i : i + 1] = [new_layer_cache]
        if only is not None:
            x = x[only]  # the output layer is a fifth of the model's arithmetic: skip it where no loss is taken
        return self.lm_head(self.norm(x))

    def add_positions(self, x: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, Rotation | None]:
        """Where each token sits, positions (T,) or (B, T): learned positions are added to the
        token embeddings x (B, T, C); rotary ones come back as the rotation attention applies."""
        if self.config.positions == "learned":
            return x + self.pos_emb(positions), None
        cos, sin = self.cos[positions], self.sin[positions]  # (T, hs), or (B, T, hs) for per-row positions
        if positions.dim() == 2:
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # broadcast over the heads
        return x, (cos, sin)

    @torch.no_grad()
    def generate(
        self,
        prompt: list[int],
        max_new_tokens: int,
        stop_id: int | None = None,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> list[int]:
        """Continue `prompt` token by token; return only the new tokens.

        temperature 0 means greedy (always the most likely token). Stops at `stop_id`
        (not included in the result), after max_new_tokens, or at max_seq_len.
        """
        device = self.tok_emb.weight.device
        ids = torch.tensor([prompt], dtype=torch.long, device=device)
        budget = min(max_new_tokens, self.config.max_seq_len - len(prompt))
        cache: KVCache | None = [] if use_cache else None
        new_tokens: list[int] = []
        next_input = ids
        for _ in range(budget):
            # without a cache, the whole sequence is recomputed at every step
            logits = self(next_input, cache=cache) if use_cache else self(ids)
            next_id = sample_next(logits[0, -1].float(), temperature, top_k, top_p, generator)
            if next_id == stop_id:
                break
            new_tokens.append(next_id)
            next_input = torch.tensor([[next_id]], device=device)
            ids = torch.cat([ids, next_input], dim=1)
        return new_tokens


def sample_next(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Pick the next token id from one position's logits (V,)."""
    if temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / temperature
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None:
        # Keep the smallest set of tokens whose probabilities add up to top_p.
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        drop = cumulative - F.softmax(sorted_logits, dim=-1) >= top_p  # always keeps the best token
        logits = logits.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
