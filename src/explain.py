"""See inside the trained model for one question: how the tokenizer splits it, what the
model almost said at every step, which source it recites, and where it looks.

    python src/explain.py "What does the tiger eat?"
    python src/explain.py "What is a comet?" --top 10 --out-dir explain

The model answers in two steps (src/qa.py): it names a source, choosing only among the real
ones, then recites the text it learned after that header, from the header alone. This
follows the same greedy path as ask.py and prints, for every token of it, the --top likeliest
tokens and their probabilities. Where the pick holds nearly all the probability the model was
sure; where others come close it hesitated, and sampling (ask.py --temperature, --top-k,
--top-p) could take another token there. The attention weights of every layer and head, for
both steps, go into one PNG in --out-dir.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # render to files, no window
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from src import utils
from src.calibrate import FEATURES, calibration_beside
from src.model import MiniTransformer
from src.qa import Candidate, SourceTrie, answer_settings, candidates, load_model, name, pick, precision
from src.qa_format import END, source_title
from src.recite import recitations_beside
from src.tokenizer import Tokenizer

SURE = 0.9  # the pick had at least this probability: the model was sure
HESITATED = 0.5  # below this, other tokens together were likelier than the pick


@dataclass
class Step:
    picked: int  # the token the greedy answer takes
    probability: float  # its probability
    candidates: list[tuple[int, float]]  # the likeliest tokens and their probabilities, likeliest first


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question")
    checkpoint = str(utils.ROOT / "models" / "model.pt")
    parser.add_argument("--model", default=checkpoint, help="the checkpoint train.py wrote (it holds the tokenizer)")
    parser.add_argument("--out-dir", default="explain", help="where the attention PNG goes (default: explain/)")
    parser.add_argument("--top", type=int, default=5, help="candidates shown per token (default: 5)")
    params = str(utils.ROOT / "params.yaml")
    parser.add_argument("--params", default=params, help="for eval.max_new_tokens and eval.min_confidence")
    return parser.parse_args()


def shown(tokenizer: Tokenizer, token: int) -> str:
    """A token's text, quoted so that its spaces show: ' tiger'."""
    return repr(tokenizer.decode([token]))


def token_table(tokenizer: Tokenizer, ids: list[int]) -> str:
    """One line per token: its position, id and text, and for a merged token the two it joins."""
    lines = [f"{'pos':>4} {'id':>6}  token"]
    for position, token in enumerate(ids):
        merged = ""
        if 256 <= token < 256 + len(tokenizer.merges):  # ids 0-255 are bytes, then one id per merge
            a, b = tokenizer.merges[token - 256]
            merged = f"   = {shown(tokenizer, a)} + {shown(tokenizer, b)}"
        lines.append(f"{position:>4} {token:>6}  {shown(tokenizer, token)}{merged}")
    return "\n".join(lines)


@torch.no_grad()
def look_inside(model: MiniTransformer, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass: the logits (T, vocab_size) and every layer's attention weights (layers, heads, T, T)."""
    seen: list[torch.Tensor] = []
    for block in model.blocks:
        block.attn.watch = lambda weights: seen.append(weights[0])
    try:
        with precision(model):  # as qa answers
            logits = model(torch.tensor([ids], device=model.tok_emb.weight.device))[0].float()
    finally:
        for block in model.blocks:
            block.attn.watch = None
    return logits.cpu(), torch.stack(seen).float().cpu()


def step(logits: torch.Tensor, picked: int, top: int, allowed: list[int] | None = None) -> Step:
    """The next-token distribution at one position; with `allowed`, over those tokens only
    (renormalised, as the source's header is chosen)."""
    ids = torch.tensor(allowed) if allowed is not None else torch.arange(len(logits))
    probs = logits[ids].softmax(-1)
    best = probs.topk(min(top, len(ids)))
    candidates = [(int(ids[i]), float(p)) for p, i in zip(best.values, best.indices)]
    return Step(picked, float(probs[ids.tolist().index(picked)]), candidates)


def header_steps(logits: torch.Tensor, prompt: list[int], header: list[int], trie: SourceTrie, top: int) -> list[Step]:
    """Step 1: each header token, chosen among the ones that continue a real header."""
    steps, node = [], trie.root
    for i, token in enumerate(header):
        steps.append(step(logits[len(prompt) - 1 + i], token, top, trie.allowed(node)))
        node = node[token]
    return steps


def text_steps(logits: torch.Tensor, header: list[int], text: list[int], end: int, top: int) -> list[Step]:
    """Step 2: each recited token, then the end token if that is where the model stops."""
    steps = [step(logits[len(header) - 1 + i], token, top) for i, token in enumerate(text)]
    last = logits[len(header) + len(text) - 1]
    if int(last.argmax()) == end:
        steps.append(step(last, end, top))
    return steps


def steps_table(tokenizer: Tokenizer, steps: list[Step]) -> str:
    lines = [f"{'step':>4}  {'picked':<16} {'p':>5}  {'':<9}  candidates"]
    for number, s in enumerate(steps, start=1):
        mark = "sure" if s.probability >= SURE else "hesitated" if s.probability < HESITATED else ""
        candidates = "  ".join(f"{shown(tokenizer, token)} {p:.3f}" for token, p in s.candidates)
        lines.append(f"{number:>4}  {shown(tokenizer, s.picked):<16} {s.probability:5.3f}  {mark:<9}  {candidates}")
    return "\n".join(lines)


def candidates_table(group: list[Candidate], recital_weight: float, picked: str) -> str:
    """One line per candidate: the model's probability of it and of its section, the share
    of the question's words its section's recitation covers and its best sentence's, whether
    that sentence fits the answer type, and the score that picks one (qa.check)."""
    lines = [f"{'p':>7} {'p(sect)':>7} {'section':>7} {'sentence':>8} {'fits':>4} {'score':>7}  source"]
    for c in sorted(group, key=lambda c: -c.score(recital_weight)):
        mark = "  <- picked" if c.source == picked else ""
        probabilities = f"{math.exp(c.logprob):7.3f} {math.exp(c.section_logprob):7.3f}"
        covers = f"{c.coverage:7.0%} {c.sentence_coverage:8.0%} {'yes' if c.fits_answer_type else 'no':>4}"
        lines.append(f"{probabilities} {covers} {c.score(recital_weight):7.2f}  {c.source}{mark}")
    return "\n".join(lines)


def article_and_section(header: str) -> tuple[str, str]:
    """The (article, section) a source header names, source_header's inverse.

    >>> article_and_section("Mercury (planet) (Orbit):")
    ('Mercury (planet)', 'Orbit')
    """
    article, _, section = header.removesuffix("):").rpartition(" (")
    return article, section


def side_by_side(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Two passes' attention weights (layers, heads, T, T) as the diagonal blocks of one square,
    so that both steps of an answer fit in one picture."""
    T1, T2 = first.shape[-1], second.shape[-1]
    both = torch.zeros(*first.shape[:2], T1 + T2, T1 + T2)
    both[..., :T1, :T1] = first
    both[..., T1:, T1:] = second
    return both


def draw_attention(weights: torch.Tensor, labels: list[str], question: str) -> Figure:
    """A grid of heatmaps, one per layer (rows) and head (columns), of weights (layers, heads, T, T)."""
    layers, heads, size = weights.shape[0], weights.shape[1], len(labels)
    cell = 2 + 0.06 * size  # inches: room for one label per token
    fig, axes = plt.subplots(layers, heads, figsize=(cell * heads, cell * layers), squeeze=False)
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer][head]
            ax.imshow(weights[layer, head].numpy(), cmap="Blues", vmin=0, vmax=1)
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
            # The tokens label the outer edges only: thousands of labels take long to draw.
            ax.set_xticks(range(size), labels if layer == layers - 1 else [], rotation=90, fontsize=4)
            ax.set_yticks(range(size), labels if head == 0 else [], fontsize=4)
    fig.suptitle(
        f"{question!r}: attention weights (row: the token looking, column: the token it looks at).\n"
        "Top left, naming the source: question, then header. Bottom right, reciting: header, then text.",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))  # leave the suptitle its room
    return fig


def write_png(path: Path, fig: Figure) -> None:
    with utils.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    if not args.question.strip():
        raise utils.UserError("the question is empty")
    utils.check_range("--top", args.top, at_least=1)
    max_new_tokens, min_confidence, recital_weight = answer_settings(args.params)
    model, tokenizer, sources = load_model(args.model, utils.pick_device())
    trie = SourceTrie(tokenizer, sources)
    end = tokenizer.special_id(END)

    # The answer, as ask.py gets it greedily: the source (and confidence), then its text.
    reply = name(model, tokenizer, trie, [args.question])[0]
    prompt = trie.prompt(tokenizer, args.question, model.config.max_seq_len)
    naming_logits, naming_attention = look_inside(model, prompt + trie.ids[reply.source])
    print(f"The question, as the tokenizer splits it ({len(prompt)} tokens):\n{token_table(tokenizer, prompt)}\n")
    print("Step 1, name the source: each token among those that continue a real header (probabilities among those)")
    print(steps_table(tokenizer, header_steps(naming_logits, prompt, trie.ids[reply.source], trie, args.top)) + "\n")
    how_sure = "step 1's probabilities multiplied"
    if recital_weight > 0 and model.config.recitation:  # as qa.answer does
        memory = recitations_beside(args.model, max_new_tokens)
        group = candidates(model, tokenizer, trie, [args.question], memory, max_new_tokens)[0]
        checked = pick(group, recital_weight)
        articles = " and ".join(f"'{a}'" for a in dict.fromkeys(source_title(c.source) for c in group))
        print(f"Check the source: each section of {articles} (named; best covered), recited and compared with the question")
        print(candidates_table(group, recital_weight, checked.source) + "\n")
        reply, how_sure = checked, "the square root of the article's probability times the chosen section's coverage"
        calibration = calibration_beside(args.model, max_new_tokens, recital_weight)
        if calibration is not None:  # as qa.answer does
            evidence = ", ".join(f"{name} {x:.2f}" for name, x in zip(FEATURES, checked.evidence))
            reply = calibration.applied(checked)
            how_sure = f"the calibrated probability that it is right, from {evidence}: models/calibration.json"
    header = trie.ids[reply.source]
    context = header if model.config.recitation else prompt + header  # what the text follows (qa.answer)
    with precision(model):
        text = model.generate(context, max_new_tokens, stop_id=end)
    reciting_logits, reciting_attention = look_inside(model, context + text)
    recited = text_steps(reciting_logits, context, text, end, args.top)
    seen = "from the header alone" if model.config.recitation else "the question before it (trained with recitation off)"
    print(f"Step 2, recite: the text after the header, {seen}")
    print(steps_table(tokenizer, recited) + "\n")
    article, section = article_and_section(reply.source)
    verdict = "answers" if reply.confidence >= min_confidence else "declines"
    print(f"Source: article '{article}', section '{section}'")
    print(f"Confidence: {reply.confidence:.4f} ({how_sure}); at threshold {min_confidence} it {verdict}")
    print(f"Answer: {tokenizer.decode(text).strip()}")
    path_probability = math.prod(s.probability for s in recited)
    print(f"Given this source, ask.py --temperature 1 recites exactly this text {path_probability:.1%} of the time.")

    path = Path(args.out_dir) / f"attention-{utils.slugify(args.question)[:60] or 'question'}.png"
    tokens = [tokenizer.decode([token]) for token in prompt + header + context + text]
    write_png(path, draw_attention(side_by_side(naming_attention, reciting_attention), tokens, args.question))
    print(f"Attention heatmaps ({model.config.num_layers} layers x {model.config.num_heads} heads): {path}")


if __name__ == "__main__":
    utils.run_cli(main)
