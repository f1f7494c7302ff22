"""Speed of the default model on this machine: training and generation throughput.

    python benchmark.py            # prints tokens/s; takes about a minute

Uses the model and train sections of params.yaml with random token ids (speed does not
depend on the data). Medians of several timed repeats, after warm-up steps.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from src import utils
from src.model import MiniTransformer, ModelConfig, attend


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_tokens_per_second(model: MiniTransformer, batch_size: int, bf16: bool) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, model.config.max_seq_len + 1))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return batch_size * model.config.max_seq_len / median_seconds(step, repeats=5)


def attention_milliseconds(attention, config: ModelConfig, batch_size: int) -> float:
    """Forward and backward of one layer's causal attention in bfloat16, at full context."""
    shape = (batch_size, config.num_heads, config.max_seq_len, config.emb_dim // config.num_heads)
    q, k, v = (torch.randn(shape, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    return 1000 * median_seconds(lambda: attention(q, k, v).sum().backward(), repeats=5)


def generation_tokens_per_second(model: MiniTransformer, use_cache: bool) -> float:
    model.eval()
    new_tokens = model.config.max_seq_len - 8
    seconds = median_seconds(lambda: model.generate([1] * 8, new_tokens, use_cache=use_cache), repeats=3)
    return new_tokens / seconds


def main() -> None:
    model_params = utils.load_params("model")
    train_params = utils.load_params("train")
    vocab_size = utils.load_params("tokenizer")["vocab_size"]
    torch.manual_seed(0)
    model = MiniTransformer(ModelConfig(vocab_size=vocab_size, **model_params))
    print(
        f"model: {model.num_params() / 1e6:.2f}M parameters, context {model.config.max_seq_len}, "
        f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}"
    )
    batch = train_params["batch_size"]
    print(f"training, fp32:       {training_tokens_per_second(model, batch, bf16=False):8.0f} tokens/s (batch {batch})")
    print(f"training, bf16 autocast: {training_tokens_per_second(model, batch, bf16=True):5.0f} tokens/s (batch {batch})")
    ms_ours = attention_milliseconds(attend, model.config, batch)
    ms_torch = attention_milliseconds(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), model.config, batch
    )
    print(f"attention, bf16 forward+backward: {ms_ours:.1f} ms model.attend, {ms_torch:.1f} ms F.scaled_dot_product_attention")
    print(f"generation, KV cache:    {generation_tokens_per_second(model, use_cache=True):5.0f} tokens/s")
    print(f"generation, no cache:    {generation_tokens_per_second(model, use_cache=False):5.0f} tokens/s")


if __name__ == "__main__":
    main()
