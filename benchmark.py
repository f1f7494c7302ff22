"""Speed and efficiency of the default model on this machine.

    python benchmark.py            # takes about two minutes

For fp32 and bf16 autocast it measures the machine's matrix-multiply peak (a large square
matmul) and then, for training steps and for generation, the tokens per second, the
GFLOP/s they amount to, and their share of that peak, all in the same run. Then the time
from starting `python src/ask.py "..."` to its printed answer (if models/model.pt exists).
Uses the model and train sections of params.yaml with random token ids (speed does not
depend on the data). Medians of several timed repeats, after a warm-up.

FLOPs are counted as in the scaling-law papers (Kaplan et al. 2020, PaLM appendix B):
a forward pass costs 2 per parameter per token plus 4 * layers * context * emb_dim for
attention (the full square, as model.attend computes it before masking); a training step
is three times that (forward, and a backward pass that costs two).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from src import utils
from src.model import MiniTransformer, ModelConfig, attend, blocked_positions

QUESTION = "What does the tiger eat?"


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_flops_per_token(model: MiniTransformer, context: int) -> float:
    c = model.config
    return 2 * model.num_params() + 4 * c.num_layers * context * c.emb_dim


def matmul_peak_gflops(bf16: bool, n: int = 1024) -> float:
    """What this machine's matrix multiply reaches on a large square product: the ceiling."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / median_seconds(lambda: a @ b, repeats=10) / 1e9


def training_tokens_per_second(model: MiniTransformer, batch_size: int, bf16: bool) -> float:
    """One optimisation step on full rows of random ids, as the train stage takes them."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)  # as train.make_optimizer
    ids = torch.randint(0, model.config.vocab_size, (batch_size, model.config.max_seq_len + 1))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return batch_size * model.config.max_seq_len / median_seconds(step, repeats=5)


def generation_tokens_per_second(model: MiniTransformer, bf16: bool, use_cache: bool = True) -> float:
    model.eval()
    new_tokens = model.config.max_seq_len - 8
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        seconds = median_seconds(lambda: model.generate([1] * 8, new_tokens, use_cache=use_cache), repeats=3)
    model.train()
    return new_tokens / seconds


def attention_milliseconds(attention, config: ModelConfig, batch_size: int, dtype: torch.dtype) -> float:
    """Forward and backward of one layer's causal attention, at full context."""
    shape = (batch_size, config.num_heads, config.max_seq_len, config.emb_dim // config.num_heads)
    q, k, v = (torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3))
    return 1000 * median_seconds(lambda: attention(q, k, v).sum().backward(), repeats=5)


def seconds_to_first_answer() -> float | None:
    """Wall time of `python src/ask.py QUESTION`, from process start to the printed answer."""
    if not Path("models/model.pt").is_file():
        return None
    start = time.perf_counter()
    subprocess.run([sys.executable, "src/ask.py", QUESTION], check=True, capture_output=True)
    return time.perf_counter() - start


def efficiency_rows(model: MiniTransformer, batch: int) -> None:
    context = model.config.max_seq_len
    train_flops = 3 * forward_flops_per_token(model, context)
    generate_flops = forward_flops_per_token(model, context // 2)  # a new token attends to half the context on average
    print(f"{'':26}{'tokens/s':>10}{'GFLOP/s':>10}{'of peak':>9}")
    for bf16 in (False, True):
        name = "bf16" if bf16 else "fp32"
        if bf16 and not utils.bf16_is_fast("cpu"):
            print("bf16: skipped, this CPU has no native bf16 (emulated, it runs ~80x slower than fp32); train uses fp32")
            continue
        peak = matmul_peak_gflops(bf16)
        print(f"{'matmul peak, ' + name:26}{'':>10}{peak:10.1f}{'100%':>9}")
        for what, rate, flops in (
            (f"training, {name}", training_tokens_per_second(model, batch, bf16), train_flops),
            (f"generation, {name}", generation_tokens_per_second(model, bf16), generate_flops),
        ):
            gflops = rate * flops / 1e9
            print(f"{what:26}{rate:10.0f}{gflops:10.1f}{gflops / peak:9.0%}")


def main() -> None:
    model_params = utils.load_params("model")
    train_params = utils.load_params("train")
    vocab_size = utils.load_params("tokenizer")["vocab_size"]
    torch.manual_seed(0)
    model = MiniTransformer(ModelConfig(vocab_size=vocab_size, **model_params))
    batch = train_params["batch_size"]
    print(
        f"model: {model.num_params() / 1e6:.2f}M parameters, context {model.config.max_seq_len}, batch {batch}, "
        f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}"
    )
    efficiency_rows(model, batch)
    print(f"generation without the KV cache, fp32: {generation_tokens_per_second(model, False, use_cache=False):.0f} tokens/s")
    T = model.config.max_seq_len
    dtype = torch.bfloat16 if utils.bf16_is_fast("cpu") else torch.float32
    ours = attention_milliseconds(
        lambda q, k, v: attend(q, k, v, blocked_positions(T, T, None, q.device)), model.config, batch, dtype
    )
    fused = attention_milliseconds(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), model.config, batch, dtype
    )
    print(f"attention, {dtype} forward+backward: {ours:.1f} ms model.attend, {fused:.1f} ms F.scaled_dot_product_attention")
    seconds = seconds_to_first_answer()
    print(f"time to first answer, python src/ask.py {QUESTION!r}: " + (f"{seconds:.1f} s" if seconds else "no models/model.pt"))


if __name__ == "__main__":
    main()
