"""The tokenizer stage: learn byte-level BPE merges from the articles and the training answers.

    python src/train_tokenizer.py

Validation and test pairs are left out, so the tokenizer never sees held-out text.
Its own stage means model experiments (train.*, model.*) don't retrain it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from src import utils
from src.tokenizer import MIN_VOCAB_SIZE, SPECIAL_TOKENS, Tokenizer


def training_texts(articles_path: Path, train_path: Path) -> list[str]:
    texts = []
    for article in utils.read_articles(articles_path):
        for heading, text in utils.article_parts(article):
            texts.append(f"{article['title'] if heading == utils.LEAD else heading}. {text}")
    for pair in utils.read_pairs(train_path):
        texts.append(f"{utils.normalize_question(pair['question'])} {pair['answer']}")
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", default="data/raw/articles.jsonl")
    parser.add_argument("--train", default="data/splits/train.jsonl")
    parser.add_argument("--output", default="models/tokenizer.json")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = utils.load_params("tokenizer", args.params, known=["vocab_size"])
    vocab_size = utils.require(params, "vocab_size", int)
    if vocab_size < MIN_VOCAB_SIZE:
        raise utils.UserError(f"{params.where}: vocab_size must be at least {MIN_VOCAB_SIZE}, got {vocab_size}")
    texts = training_texts(Path(args.articles), Path(args.train))
    start = time.perf_counter()
    tokenizer = Tokenizer.train(texts, vocab_size, SPECIAL_TOKENS)  # the special tokens qa_format.py uses
    with utils.atomic_path(args.output) as tmp:
        tokenizer.save(tmp)
    n_chars = sum(len(t) for t in texts)
    n_tokens = sum(len(tokenizer.encode(t)) for t in texts)
    print(
        f"tokenizer: vocab {tokenizer.vocab_size} from {n_chars / 1e6:.2f}M characters in "
        f"{time.perf_counter() - start:.1f}s; {n_chars / n_tokens:.2f} characters per token -> {args.output}"
    )


if __name__ == "__main__":
    utils.run_cli(main)
