"""Ask the trained model a question.

    python src/ask.py "What is a comet?"
    python src/ask.py                      # interactive: one question per line, empty line or Ctrl-D quits

The reply opens with the article section the model recalls, e.g. "Comet (Lead): A comet is ...".
Greedy by default (the same answer every time); --temperature, --top-k and --top-p sample instead.
"""
from __future__ import annotations

import argparse

import torch

import utils
from qa import load_model, reply


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", help="the question; without it, an interactive prompt opens")
    parser.add_argument("--checkpoint", default="models/model.pt")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=int, help="sample only among the k most likely tokens")
    parser.add_argument("--top-p", type=float, help="sample only among the most likely tokens that add up to p")
    parser.add_argument("--max-new-tokens", type=int, default=110)
    parser.add_argument("--seed", type=int, help="seed for sampling, to repeat a sampled answer")
    args = parser.parse_args()
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise utils.UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    model, tokenizer = load_model(args.checkpoint, utils.pick_device())
    generator = torch.Generator(device=model.tok_emb.weight.device)
    generator.manual_seed(args.seed if args.seed is not None else torch.seed())
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "generator": generator}

    if args.question:
        print(reply(model, tokenizer, args.question, args.max_new_tokens, **sampling))
        return
    print("Ask a question about astronomy, anatomy, animals, geography, chemistry or weather (empty line quits).")
    while True:
        try:
            question = input("> ").strip()
        except EOFError:
            break
        if not question:
            break
        print(reply(model, tokenizer, question, args.max_new_tokens, **sampling))


if __name__ == "__main__":
    utils.run_cli(main)
