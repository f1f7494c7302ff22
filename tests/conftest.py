"""Shared test set-up: one torch thread, and a tiny world (articles, passages, Q&A splits, evaluation sets, a
tokenizer, a small params.yaml) that is trained once per session through the CLI and shared
by tests/test_train.py and tests/test_eval.py (`from conftest import ...` for the data)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src import qa_format, utils
from src.tokenizer import Tokenizer

REPO = Path(__file__).resolve().parent.parent

# One thread per process: on a busy 2-core machine, OpenMP threads contending for the cores make
# these tiny models ~100x slower. Numerics and determinism do not depend on it.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """On a busy 2-core machine, OpenMP contention makes tiny models ~100x slower.
    Results do not depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- a tiny world

ARTICLES = [
    {
        "id": "tiger",
        "title": "Tiger",
        "domain": "animals",
        "url": "https://en.wikipedia.org/wiki/Tiger",
        "aliases": [],
        "lead": "The tiger is the largest living cat species. It has orange fur with black stripes.",
        "sections": [
            {
                "heading": "Diet",
                "text": "Tigers are carnivores that hunt deer and wild boar. "
                "They ambush prey at night. A tiger can eat forty kilograms of meat in one meal.",
            },
            {
                "heading": "Habitat",
                "text": "Tigers live in forests and grasslands of Asia. "
                "They need water and dense cover. Most wild tigers live in India.",
            },
        ],
    },
    {
        "id": "giraffe",
        "title": "Giraffe",
        "domain": "animals",
        "url": "https://en.wikipedia.org/wiki/Giraffe",
        "aliases": [],
        "lead": "The giraffe is the tallest living land animal. It has a very long neck and legs.",
        "sections": [
            {
                "heading": "Diet",
                "text": "Giraffes browse on the leaves of acacia trees. "
                "Their long tongues strip leaves from thorny branches. They drink water rarely.",
            },
            {
                "heading": "Habitat",
                "text": "Giraffes live in savannas and open woodlands of Africa. "
                "They avoid dense forest. Herds roam over large ranges.",
            },
        ],
    },
    {
        "id": "mars",
        "title": "Mars",
        "domain": "astronomy",
        "url": "https://en.wikipedia.org/wiki/Mars",
        "aliases": ["Red Planet"],
        "lead": "Mars is the fourth planet from the Sun. It is often called the Red Planet.",
        "sections": [
            {
                "heading": "Moons",
                "text": "Mars has two small moons named Phobos and Deimos. "
                "Both moons are irregular in shape. They may be captured asteroids.",
            },
            {
                "heading": "Surface",
                "text": "The surface of Mars is covered in red iron oxide dust. "
                "Olympus Mons is the tallest volcano on Mars. Valles Marineris is a huge canyon.",
            },
        ],
    },
    {
        "id": "jupiter",
        "title": "Jupiter",
        "domain": "astronomy",
        "url": "https://en.wikipedia.org/wiki/Jupiter",
        "aliases": [],
        "lead": "Jupiter is the largest planet in the Solar System. It is a gas giant made mostly of hydrogen.",
        "sections": [
            {
                "heading": "Moons",
                "text": "Jupiter has ninety five known moons. "
                "The four largest are the Galilean moons. Ganymede is bigger than Mercury.",
            },
            {
                "heading": "Atmosphere",
                "text": "The Great Red Spot is a giant storm on Jupiter. "
                "Bands of clouds circle the planet. Winds reach six hundred kilometres per hour.",
            },
        ],
    },
]
TITLES = {a["title"] for a in ARTICLES}

QUESTIONS = {  # (article id, heading) -> (train question, val question, test question)
    ("tiger", "Diet"): ("What does the tiger eat?", "What food does the tiger hunt?", "Which prey do tigers hunt for food?"),
    ("tiger", "Habitat"): (
        "Where does the tiger live?",
        "What habitat does the tiger need?",
        "In which forests and grasslands do tigers live?",
    ),
    ("giraffe", "Diet"): ("What does the giraffe eat?", "What food does the giraffe browse?", "Which leaves do giraffes browse?"),
    ("giraffe", "Habitat"): (
        "Where does the giraffe live?",
        "What habitat does the giraffe need?",
        "In which savannas do giraffes live?",
    ),
    ("mars", "Moons"): ("What moons does Mars have?", "How many moons orbit Mars?", "What are the names of the moons of Mars?"),
    ("mars", "Surface"): (
        "What is the surface of Mars like?",
        "What covers the surface of Mars?",
        "Which volcano is on the surface of Mars?",
    ),
    ("jupiter", "Moons"): (
        "What moons does Jupiter have?",
        "How many moons orbit Jupiter?",
        "Which are the largest moons of Jupiter?",
    ),
    ("jupiter", "Atmosphere"): (
        "What is the atmosphere of Jupiter like?",
        "What storms are on Jupiter?",
        "What is the Great Red Spot on Jupiter?",
    ),
}

# Hand-written questions about the tiny world, as evalsets/natural/ has them: one file per domain.
# The first repeats a training question with other case and punctuation (same_as_training_question).
NATURAL = [
    {
        "id": "animals-001",
        "domain": "animals",
        "question": "what does the TIGER eat",
        "article": "Tiger",
        "section": "Diet",
        "pattern": r"deer|boar",
    },
    {
        "id": "animals-002",
        "domain": "animals",
        "question": "giraffes eat what kind of leaves?",
        "article": "Giraffe",
        "section": "Diet",
        "pattern": r"acacia",
    },
    {
        "id": "animals-003",
        "domain": "animals",
        "question": "where do wild tigers live",
        "article": "Tiger",
        "section": "Habitat",
        "pattern": r"asia|india|forest",
    },
    {
        "id": "astronomy-001",
        "domain": "astronomy",
        "question": "names of the two moons of mars?",
        "article": "Mars",
        "section": "Moons",
        "pattern": r"phobos|deimos",
    },
    {
        "id": "astronomy-002",
        "domain": "astronomy",
        "question": "whats the great red spot",
        "article": "Jupiter",
        "section": "Atmosphere",
        "pattern": r"storm",
    },
]
CALIBRATION_NATURAL = [  # validation questions (calibration/natural/), none of NATURAL's
    {"id": "val-1", "domain": "animals", "question": "what do tigers hunt", "article": "Tiger", "pattern": r"deer|boar"},
    {"id": "val-2", "domain": "animals", "question": "where do giraffes live?", "article": "Giraffe", "pattern": r"savanna"},
    {"id": "val-3", "domain": "astronomy", "question": "how many moons has jupiter", "article": "Jupiter", "pattern": r"ninety"},
    {"id": "val-4", "domain": "astronomy", "question": "what is on the surface of mars", "article": "Mars", "pattern": r"dust"},
]
OUT_OF_SCOPE = ["Who wrote the novel War and Peace?", "What is the capital of Peru?", "How do I bake sourdough bread?"]
CALIBRATION = [
    "Who painted the Mona Lisa?",
    "What is the boiling point of ethanol?",
    "How fast can a cheetah run?",
    "When did the Roman Empire fall?",
]


def passages() -> list[dict]:
    """The passages generate would write for the tiny world: each article part's first two
    sentences under its heading ('Lead' for the lead), and the rest as '<heading>, part 2'."""
    found = []
    for a in ARTICLES:
        for heading, text in [("Lead", a["lead"])] + [(s["heading"], s["text"]) for s in a["sections"]]:
            sentences = utils.split_sentences(text)
            for label, run in ((heading, sentences[:2]), (f"{heading}, part 2", sentences[2:])):
                if run:
                    found.append(
                        {
                            "id": f"{a['id']}#{utils.slugify(label)}",
                            "domain": a["domain"],
                            "title": a["title"],
                            "section": label,
                            "text": " ".join(run),
                        }
                    )
    return found


def headers() -> list[str]:
    """The source headers of all passages, in passages.jsonl order (the checkpoint's 'sources')."""
    return [qa_format.source_header(p["title"], p["section"]) for p in passages()]


def qa_pairs(which: int) -> list[dict]:
    """which: 0 train, 1 val, 2 test. The answer is the section's first passage (its first two sentences)."""
    by_id = {a["id"]: a for a in ARTICLES}
    pairs = []
    for (article_id, heading), questions in QUESTIONS.items():
        article = by_id[article_id]
        text = next(s["text"] for s in article["sections"] if s["heading"] == heading)
        pairs.append(
            {
                "id": f"{article_id}-{heading}-{which}",
                "fact_id": f"{article_id}-{heading}",
                "domain": article["domain"],
                "title": article["title"],
                "section": heading,
                "question": questions[which],
                "answer": " ".join(utils.split_sentences(text)[:2]),
            }
        )
    return pairs


def all_texts() -> list[str]:
    texts = []
    for a in ARTICLES:
        texts += [a["title"], a["lead"]] + [s["heading"] + " " + s["text"] for s in a["sections"]]
    texts += [p["question"] + " " + p["answer"] for which in range(3) for p in qa_pairs(which)]
    return texts


def tiny_tokenizer() -> Tokenizer:
    return Tokenizer.train(all_texts(), 300)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


MIN_CONFIDENCE = 0.25


def write_params(path: Path, drop_train_key: str | None = None, **train_overrides) -> Path:
    """params.yaml with the real file's sections, shrunk to a model and run that take seconds."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["model"] = {"max_seq_len": 96, "emb_dim": 64, "num_layers": 2, "num_heads": 2, "dropout": 0.0, "positions": "rotary"}
    # enough steps for the tiny model to learn to recite its training answers (~10 s on one thread)
    params["train"].update(
        {
            "seed": 7,
            "max_steps": 300,
            "batch_size": 8,
            "lr": 6.0e-3,
            "min_lr": 6.0e-4,
            "warmup_steps": 20,
            "eval_interval": 100,
            "eval_batches": 2,
            "bf16": False,
        }
    )
    params["train"].update(train_overrides)
    if drop_train_key:
        del params["train"][drop_train_key]
    params["eval"].update(max_new_tokens=80, min_confidence=MIN_CONFIDENCE)
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def make_world(root: Path) -> dict[str, Path]:
    """Write the tiny inputs under `root`; return the paths train.py and eval.py take."""
    root.mkdir(parents=True, exist_ok=True)
    natural = root / "natural"
    natural.mkdir()
    for domain in sorted({q["domain"] for q in NATURAL}):
        write_jsonl(natural / f"{domain}.jsonl", [q for q in NATURAL if q["domain"] == domain])
    calibration_natural = root / "calibration_natural"
    calibration_natural.mkdir()
    for domain in sorted({q["domain"] for q in CALIBRATION_NATURAL}):
        write_jsonl(calibration_natural / f"{domain}.jsonl", [q for q in CALIBRATION_NATURAL if q["domain"] == domain])
    paths = {
        "articles": write_jsonl(root / "articles.jsonl", ARTICLES),
        "passages": write_jsonl(root / "passages.jsonl", passages()),
        "train": write_jsonl(root / "train.jsonl", qa_pairs(0)),
        "val": write_jsonl(root / "val.jsonl", qa_pairs(1)),
        "test": write_jsonl(root / "test.jsonl", qa_pairs(2)),
        "natural": natural,
        "out_of_scope": write_jsonl(root / "out_of_scope.jsonl", [{"question": q} for q in OUT_OF_SCOPE]),
        "calibration": write_jsonl(root / "calibration.jsonl", [{"question": q} for q in CALIBRATION]),
        "calibration_natural": calibration_natural,
        "tokenizer": root / "tokenizer.json",
        "params": write_params(root / "params.yaml"),
    }
    tiny_tokenizer().save(paths["tokenizer"])
    return paths


# Where the stages' default paths (and dvc.yaml) look for each file of the tiny world.
PROJECT_PATHS = {
    "articles": "data/raw/articles.jsonl",
    "passages": "data/processed/passages.jsonl",
    "train": "data/splits/train.jsonl",
    "val": "data/splits/val.jsonl",
    "test": "data/splits/test.jsonl",
    "natural": "evalsets/natural",
    "out_of_scope": "evalsets/out_of_scope.jsonl",
    "calibration": "calibration/out_of_scope.jsonl",
    "calibration_natural": "calibration/natural",
    "tokenizer": "models/tokenizer.json",
    "params": "params.yaml",
}


def lay_out_project(world: dict[str, Path], root: Path) -> Path:
    """Copy the tiny world under `root` to where the stages' default paths look, so that
    `python -m src.train` (or `dvc repro`) run there needs no flags."""
    for name, where in PROJECT_PATHS.items():
        target = root / where
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if world[name].is_dir() else shutil.copy)(world[name], target)
    return root


def run_train(
    world: dict[str, Path], out: Path, params: Path | None = None
) -> tuple[subprocess.CompletedProcess, dict[str, Path]]:
    outputs = {"checkpoint": out / "model.pt", "metrics": out / "train.json", "plot": out / "train_loss.csv"}
    cmd = [
        sys.executable,
        "-m",
        "src.train",
        "--passages",
        world["passages"],
        "--train",
        world["train"],
        "--val",
        world["val"],
        "--tokenizer",
        world["tokenizer"],
        "--checkpoint",
        outputs["checkpoint"],
        "--metrics",
        outputs["metrics"],
        "--plot",
        outputs["plot"],
        "--params",
        params or world["params"],
    ]
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV)
    return result, outputs


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[dict[str, Path], dict[str, Path], subprocess.CompletedProcess]:
    """The tiny world trained once per test session: (inputs, outputs, train result)."""
    world = make_world(tmp_path_factory.mktemp("world"))
    result, outputs = run_train(world, tmp_path_factory.mktemp("trained"))
    assert result.returncode == 0, result.stderr
    return world, outputs, result


@pytest.fixture(scope="session")
def tok() -> Tokenizer:
    return tiny_tokenizer()
