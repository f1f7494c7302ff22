"""The split stage: train / validation / test pairs, split by fact.

    python src/data_pipeline.py split --input data/processed/qa_pairs.jsonl --output-dir data/splits
    python -m src.split --input data/processed/qa_pairs.jsonl --output-dir data/splits

All paraphrases of one fact land in one split, so the test set measures recall of facts
whose questions training never saw. Stratified by domain, seeded (scikit-learn).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from sklearn.model_selection import train_test_split

from src import utils
from src.utils import UserError

SPLITS = ("train", "val", "test")


def check_sizes(sizes: dict[str, float]) -> None:
    for name, size in sizes.items():
        if not isinstance(size, (int, float)) or not 0 < size < 1:
            raise UserError(f"split: {name} must be a number between 0 and 1, got {size!r}")
    if abs(sum(sizes.values()) - 1.0) > 1e-6:
        raise UserError(f"split: train_size + val_size + test_size must be 1, got {sum(sizes.values()):.4g}")


def split_pairs(pairs: list[dict[str, Any]], sizes: dict[str, float], seed: int) -> dict[str, list[dict[str, Any]]]:
    """Split by fact (so no paraphrase leaks across splits), stratified by domain."""
    fact_domain = {p["fact_id"]: p["domain"] for p in pairs}
    facts = sorted(fact_domain)
    domains = [fact_domain[f] for f in facts]
    train_facts, rest, _, rest_domains = train_test_split(
        facts, domains, train_size=sizes["train_size"], stratify=domains, random_state=seed
    )
    val_share = sizes["val_size"] / (sizes["val_size"] + sizes["test_size"])
    val_facts, test_facts = train_test_split(rest, train_size=val_share, stratify=rest_domains, random_state=seed)
    split_of = {f: "train" for f in train_facts} | {f: "val" for f in val_facts} | {f: "test" for f in test_facts}
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for pair in pairs:
        splits[split_of[pair["fact_id"]]].append(pair)
    return splits


def split(input_path: Path, output_dir: Path, sizes: dict[str, float], seed: int) -> None:
    check_sizes(sizes)
    pairs = utils.read_pairs(input_path)
    if not pairs:
        raise UserError(f"{input_path}: no Q&A pairs to split")
    try:
        splits = split_pairs(pairs, sizes, seed)
    except ValueError as err:  # e.g. too few facts per domain to stratify
        raise UserError(f"{input_path}: cannot split: {err}") from None
    for name, records in splits.items():
        if not records:
            raise UserError(f"{input_path}: cannot split: the {name} split would be empty (too few facts)")
    write_splits(output_dir, splits)
    print("split: " + ", ".join(f"{name} {len(r)}" for name, r in splits.items()) + f" -> {output_dir}")


def write_splits(output_dir: Path, splits: dict[str, list[dict[str, Any]]]) -> None:
    """Write the split files as one set: into a new folder beside output_dir, then swapped in by
    two renames. Killed at any instant, it leaves the old set or the new one (or, between the
    renames, no folder, which the next run rebuilds), never new train beside old test."""
    files = {f"{name}.jsonl" for name in splits}
    if output_dir.is_dir():  # the whole folder is replaced: never one that holds anything else
        others = sorted(p.name for p in output_dir.iterdir() if p.name not in files and not p.name.endswith(".tmp"))
        if others:
            raise UserError(f"{output_dir}: holds '{others[0]}', not a split file: give an --output-dir of its own")
    elif output_dir.exists():
        raise UserError(f"{output_dir}: not a folder")
    target = output_dir.resolve()
    new, old = (target.with_name(f".{target.name}.{kind}.tmp") for kind in ("new", "old"))
    for leftover in (new, old):  # from a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    new.mkdir(parents=True)
    for name, records in splits.items():
        utils.write_jsonl(new / f"{name}.jsonl", records)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", default="data/processed/qa_pairs.jsonl")
    parser.add_argument("--output-dir", default="data/splits")
    for name in SPLITS:
        parser.add_argument(f"--{name}-size", type=float, help=f"overrides split.{name}_size")
    parser.add_argument("--seed", type=int, help="overrides split.seed")


def run(args: argparse.Namespace) -> None:
    params = utils.load_params("split", args.params, known=[f"{name}_size" for name in SPLITS] + ["seed"])
    sizes = {}
    for name in SPLITS:
        flag = getattr(args, f"{name}_size")
        sizes[f"{name}_size"] = flag if flag is not None else utils.require(params, f"{name}_size", float)
    seed = args.seed if args.seed is not None else utils.require(params, "seed", int)
    split(Path(args.input), Path(args.output_dir), sizes, seed)


if __name__ == "__main__":
    utils.run_stage(__doc__, add_arguments, run)
