"""The data stages behind one command: fetch articles, generate Q&A pairs from them, split the pairs.

    python src/data_pipeline.py fetch --output data/raw/articles.jsonl
    python src/data_pipeline.py generate --input data/raw/articles.jsonl --output data/processed/qa_pairs.jsonl
    python src/data_pipeline.py split --input data/processed/qa_pairs.jsonl --output-dir data/splits

Each stage lives in its own module (src/fetch.py, src/generate.py, src/split.py), which
dvc.yaml runs directly so that editing one stage reruns only that stage and what follows.
Flags override params.yaml; params.yaml gives the defaults. No torch here: these stages start fast.
"""

from __future__ import annotations

import argparse

from src import fetch, generate, split, utils

STAGES = {
    "fetch": (fetch, "collect articles (offline snapshot or Wikipedia)"),
    "generate": (generate, "turn articles into question/answer pairs"),
    "split": (split, "split pairs into train/val/test by fact"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)
    for command, (stage, help_text) in STAGES.items():
        stage.add_arguments(commands.add_parser(command, help=help_text))
    args = parser.parse_args()
    STAGES[args.command][0].run(args)


if __name__ == "__main__":
    utils.run_cli(main)
