"""The recite stage: the trained model recites every passage it learned, once.

    python -m src.recite

Answering checks the source the model names against what it recites from every source it
knows (qa.check), about 1,800 recitations. A greedy recitation depends on its header alone,
so it is the same for every question: this stage recites each once and writes them to
models/recitations.json, and eval, ask.py and explain.py start from that file instead of
reciting them all again (the answers are the same either way; a test checks it). The file
names the checkpoint it was recited by (its SHA-256), eval.max_new_tokens and whether it was
recited in bfloat16 (qa.precision): a file that does not match is ignored, and the model
recites afresh. It is the model's own text, never
the articles': answering stays closed book.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from src import utils
from src.qa import SourceTrie, answer_settings, load_model, recite_headers

FORMAT = "minillm-recitations"


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_recitations(path: str | Path, checkpoint: str | Path, max_new_tokens: int) -> dict[str, str]:
    """The recitations in `path` if they were made by this checkpoint at this max_new_tokens;
    {} if there is no such file or it was made otherwise (then the model recites afresh). A
    file that is not a recitations file is a UserError."""
    path = Path(path)
    if not path.exists():
        return {}
    data = utils.read_json_file(path, FORMAT)
    recitations = data.get("recitations")
    if not isinstance(recitations, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in recitations.items()):
        raise utils.UserError(f"{path}: key 'recitations' must map source headers to texts")
    made = made_by(checkpoint, max_new_tokens)
    return recitations if {key: data.get(key) for key in made} == made else {}


def made_by(checkpoint: str | Path, max_new_tokens: int) -> dict:
    """What recitations depend on besides the headers: the checkpoint (by SHA-256), the
    token budget, and the precision they were recited in (qa.precision)."""
    bf16 = utils.bf16_is_fast(utils.pick_device())
    return {"checkpoint_sha256": file_sha256(checkpoint), "max_new_tokens": max_new_tokens, "bf16": bf16}


def recitations_beside(checkpoint: str | Path, max_new_tokens: int) -> dict[str, str]:
    """read_recitations of the recitations.json beside the checkpoint (models/ for the pipeline's)."""
    return read_recitations(Path(checkpoint).with_name("recitations.json"), checkpoint, max_new_tokens)


def recite_all(checkpoint: str | Path, max_new_tokens: int) -> dict[str, str]:
    """The greedy recitation of every source header the checkpoint learned."""
    model, tokenizer, sources = load_model(checkpoint, utils.pick_device())
    memory: dict[str, str] = {}
    # 256 rows at a time: the stage takes half as long as with 64 (experiments/README.md, twelfth round)
    recite_headers(model, tokenizer, SourceTrie(tokenizer, sources), sources, memory, max_new_tokens, batch_size=256)
    return memory


def run(args: argparse.Namespace) -> None:
    max_new_tokens, _, _ = answer_settings(args.params)
    start = time.perf_counter()
    recitations = recite_all(args.checkpoint, max_new_tokens)
    utils.write_json(args.output, {"format": FORMAT, **made_by(args.checkpoint, max_new_tokens), "recitations": recitations})
    print(f"recite: {len(recitations)} passages in {time.perf_counter() - start:.1f}s -> {args.output}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="models/model.pt")
    parser.add_argument("--output", default="models/recitations.json", help="keep it beside the checkpoint: ask.py looks there")


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, run)
