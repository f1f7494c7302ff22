"""Ask the trained model a question.

    python src/ask.py "What is a comet?"
    python src/ask.py                      # interactive: one question per line, empty line or Ctrl-D quits

The reply opens with the article section the model recalls, e.g. "Comet (Lead): A comet is ...";
the model can only name a section it learned. When its confidence that the answer is right
(calibrated on validation questions: models/calibration.json, src/calibrate.py) is below
eval.min_confidence (params.yaml), it says it does not know and names the closest topics it
does know. Greedy by default (the same answer every time); --temperature, --top-k and
--top-p sample the answer's text instead (the section is always the likeliest one).
"""

from __future__ import annotations

import argparse
import itertools
from functools import partial

import torch

from src import utils
from src.calibrate import calibration_beside
from src.qa import Reply, SourceTrie, answer, answer_settings, closest_sources, load_model
from src.qa_format import source_title
from src.recite import recitations_beside


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", help="the question; without it, an interactive prompt opens")
    parser.add_argument("--checkpoint", default=str(utils.ROOT / "models" / "model.pt"))
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=int, help="sample only among the k most likely tokens")
    parser.add_argument("--top-p", type=float, help="sample only among the most likely tokens that add up to p")
    parser.add_argument("--max-new-tokens", type=int, help="default: eval.max_new_tokens")
    parser.add_argument("--min-confidence", type=float, help="decline below this; default: eval.min_confidence")
    parser.add_argument("--params", default=str(utils.ROOT / "params.yaml"))
    parser.add_argument("--seed", type=int, help="seed for sampling, to repeat a sampled answer")
    return parser.parse_args()


def check_flags(args: argparse.Namespace, max_new_tokens: int, min_confidence: float) -> None:
    """One-line errors for values that would crash or silently do nothing."""
    if args.question is not None:
        check_utf8(args.question, "the question")
        if not args.question.strip():
            raise utils.UserError("the question is empty (leave it out for the interactive prompt)")
    utils.check_range("--max-new-tokens", max_new_tokens, at_least=1)
    utils.check_range("--min-confidence", min_confidence, at_least=0)  # above 1: always decline
    utils.check_range("--temperature", args.temperature, at_least=0)
    utils.check_range("--top-p", args.top_p, above=0, at_most=1)
    utils.check_range("--top-k", args.top_k, at_least=1)


def check_utf8(text: str, where: str) -> None:
    """Python hands on bytes that are not UTF-8 (in argv, or stdin) as lone surrogates, which
    no tokenizer can encode: one line naming where they came from instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise utils.UserError(f"{where}: not valid UTF-8 text") from None


def main() -> None:
    args = parse_args()
    max_new_tokens, min_confidence, recital_weight = answer_settings(args.params)
    max_new_tokens = args.max_new_tokens if args.max_new_tokens is not None else max_new_tokens
    min_confidence = args.min_confidence if args.min_confidence is not None else min_confidence
    check_flags(args, max_new_tokens, min_confidence)
    model, tokenizer, sources = load_model(args.checkpoint, utils.pick_device())
    trie = SourceTrie(tokenizer, sources)
    generator = torch.Generator(device=model.tok_emb.weight.device)
    generator.manual_seed(args.seed if args.seed is not None else torch.seed())
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "generator": generator}

    memory = recitations_beside(args.checkpoint, max_new_tokens)  # else the first question recites them all
    calibration = calibration_beside(args.checkpoint, max_new_tokens, recital_weight)  # none: the uncalibrated mix
    ask = partial(answer, model, tokenizer, trie, max_new_tokens=max_new_tokens, recital_weight=recital_weight)

    def respond(question: str) -> str:
        reply: Reply = ask([question], memory=memory, calibration=calibration, **sampling)[0]
        closest = []
        if reply.confidence < min_confidence:
            titles = [source_title(source) for source in closest_sources(model, tokenizer, trie, question)]
            closest = list(dict.fromkeys(titles))[:3]
        return reply.shown(min_confidence, closest)

    if args.question is not None:
        print(respond(args.question))
        return
    print("Ask a question about astronomy, anatomy, animals, geography, chemistry or weather (empty line quits).")
    for line_no in itertools.count(1):
        try:
            question = input("> ")
        except EOFError:
            break
        except UnicodeDecodeError:  # where stdin decodes strictly, not passing bad bytes on as surrogates
            raise utils.UserError(f"<stdin>:{line_no}: not valid UTF-8 text") from None
        check_utf8(question, f"<stdin>:{line_no}")
        question = question.strip()
        if not question:
            break
        print(respond(question))


if __name__ == "__main__":
    utils.run_cli(main)
