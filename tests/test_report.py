"""The report stage on small synthetic metrics: one self-contained HTML page (every picture a
PNG inside it, nothing loaded from elsewhere) with all its sections; and, where the machine
has chromium, the page rendered in a real headless browser with no console errors."""

import argparse
import base64
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import pytest
from conftest import ENV, REPO

from src import report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SYSTEMS = ("model", "closed_book_retrieval", "open_book_retrieval")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def answer(question, source, confidence, reference_source, text="Tigers hunt deer."):
    return {
        "domain": "animals",
        "question": question,
        "source": source,
        "confidence": confidence,
        "generated": text,
        "reference_source": reference_source,
        "reference": "Tigers hunt deer and <wild> boar.",
    }


TEST_ANSWERS = [
    answer("What does the tiger eat?", "Tiger (Diet):", 0.97, "Tiger (Diet):"),
    answer("What do tigers eat?", "Tiger (Diet):", 0.99, "Tiger (Diet):"),  # a paraphrase: shown once
    answer("Where does the tiger live?", "Tiger (Habitat):", 0.6, "Tiger (Habitat):"),
    answer("What moons does Mars have?", "Jupiter (Moons):", 0.9, "Mars (Moons):", "Jupiter has 95 moons."),
    answer("Is <b>Mars</b> red?", "Giraffe (Diet):", 0.3, "Mars (Lead):", "Giraffes browse."),
]
NATURAL_ANSWERS = [
    {"question": q, "source": "Tiger (Diet):", "confidence": c, "declined": d, "right": r, "generated": "Tigers hunt deer."}
    | {"article": "Tiger", "pattern": "deer"}
    for q, c, d, r in [("what do tigers eat", 0.9, False, True), ("tiger food?", 0.8, False, False), ("x?", 0.1, True, False)]
]


def outcome(*values, keys=("accuracy", "wrong", "declined")):
    return dict(zip(keys, values))


def write_inputs(folder: Path) -> argparse.Namespace:
    """Small metrics files in the shapes train and eval write; the report's arguments for them."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        **{system: {"rougeL_f1": 0.5, "token_f1": 0.4, "exact_match": 0.25} for system in SYSTEMS},
        "natural": {**{s: outcome(0.375, 0.5, 0.125) for s in SYSTEMS}, "same_as_training_question": 0.0625},
        "out_of_scope": {s: outcome(0.8125, 0.1875, keys=("declined", "answered")) for s in SYSTEMS},
    }
    metrics["model"].update(source_accuracy=0.75, perplexity=1.5, declined=0.125, faithful=1.0, invented_sources=0)
    domains = ("astronomy", "animals")
    details = {"natural_per_domain": {d: {s: outcome(0.5, 0.25, 0.25) for s in SYSTEMS} for d in domains}}
    details["suggested_min_confidence"] = 0.45
    paths = {
        "train_metrics": folder / "train.json",
        "loss": folder / "train_loss.csv",
        "metrics": folder / "eval.json",
        "details": folder / "eval_details.json",
        "test_answers": folder / "test_answers.jsonl",
        "natural_answers": folder / "natural_answers.jsonl",
        "per_domain_plot": folder / "eval_per_domain.png",
        "tradeoff_plot": folder / "decline_tradeoff.png",
        "output": folder / "reports" / "index.html",
    }
    train = {"best_val_loss": 0.9, "final_train_loss": 0.7, "steps": 20, "num_params": 1234}
    paths["train_metrics"].write_text(json.dumps(train))
    paths["loss"].write_text("step,train_loss,val_loss\n10,3.5,3.25\n20,1.5,1.75\n")
    paths["metrics"].write_text(json.dumps(metrics))
    paths["details"].write_text(json.dumps(details))
    paths["test_answers"].write_text("".join(json.dumps(a) + "\n" for a in TEST_ANSWERS))
    paths["natural_answers"].write_text("".join(json.dumps(a) + "\n" for a in NATURAL_ANSWERS))
    for name in ("per_domain_plot", "tradeoff_plot"):
        fig = plt.figure(figsize=(2, 1))
        fig.savefig(paths[name], format="png")
        plt.close(fig)
    return argparse.Namespace(**paths)


class Page(HTMLParser):
    """What a browser would load from the page, and its sections."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def of(self, tag: str) -> list[dict]:
        return [attrs for t, attrs in self.tags if t == tag]


def run_report(args: argparse.Namespace) -> subprocess.CompletedProcess:
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in vars(args).items()]
    return subprocess.run(
        [sys.executable, "-m", "src.report", *flags], cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    args = write_inputs(tmp_path_factory.mktemp("metrics"))
    result = run_report(args)
    assert result.returncode == 0, result.stderr
    return args, args.output.read_text(encoding="utf-8")


def test_every_picture_is_a_png_inside_the_page(built):
    args, text = built
    images = Page(text).of("img")
    assert len(images) == 3  # the loss curves, the per-domain scores, the decline trade-off
    pngs = []
    for img in images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix) and img["alt"]
        pngs.append(base64.b64decode(img["src"][len(prefix) :], validate=True))
        assert pngs[-1].startswith(PNG_MAGIC)
    assert args.per_domain_plot.read_bytes() in pngs and args.tradeoff_plot.read_bytes() in pngs


def test_loads_nothing_from_elsewhere(built):
    page = Page(built[1])
    assert not page.of("script") and not page.of("link") and not page.of("iframe")
    for _, attrs in page.tags:
        for name in ("src", "href"):
            assert name not in attrs or attrs[name].startswith(("data:", "#")), attrs


def test_has_every_section_and_its_numbers(built):
    text = built[1]
    page = Page(text)
    sections = [attrs["id"] for attrs in page.of("section")]
    assert sections == ["training", "test", "per-domain", "natural", "answers"]
    shown = "".join(page.text)
    for number in ("1234", "0.375", "0.812", "min_confidence 0.45", "6.2%"):  # params, natural right, out of scope declined, ...
        assert number in shown
    assert shown.count("astronomy") == 1 and shown.count("animals") == 1  # one row per domain


def test_shows_best_and_worst_answers_with_their_references(built):
    shown = "".join(Page(built[1]).text)
    best, worst, natural = shown.split("most confident first:")[1:]
    assert "What do tigers eat?" in best and "What does the tiger eat?" not in best  # a paraphrase: once
    assert best.index("What do tigers eat?") < best.index("Where does the tiger live?")  # most confident first
    assert "Tigers hunt deer and <wild> boar." in best  # the reference, escaped in the page, as text here
    assert worst.index("What moons does Mars have?") < worst.index("Is <b>Mars</b> red?")
    assert "Mars (Moons):" in worst and "Jupiter has 95 moons." in worst
    assert "tiger food?" in natural and "what do tigers eat" not in natural and "x?" not in natural
    assert "<b>Mars</b>" in built[1].replace("&lt;", "<").replace("&gt;", ">") and "<b>" not in built[1]


def test_same_inputs_give_the_same_bytes(built, tmp_path):
    args, text = built
    again = argparse.Namespace(**{**vars(args), "output": tmp_path / "index.html"})
    report.report(again)
    assert (tmp_path / "index.html").read_text(encoding="utf-8") == text


@pytest.mark.parametrize(
    "broken, content, message",
    [
        ("metrics", '{"model": {}}', "eval.json: missing key 'model.rougeL_f1'"),
        ("loss", "step,train_loss,val_loss\n10,3.5,nan?\n", "train_loss.csv:2: expected numbers"),
        ("tradeoff_plot", "not a picture", "decline_tradeoff.png: not a PNG image"),
        ("test_answers", '{"question": "q"}\n', "test_answers.jsonl:1: missing key 'source'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, broken, content, message):
    args = write_inputs(tmp_path)
    getattr(args, broken).write_text(content)
    result = run_report(args)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert not args.output.parent.exists()


def screenshot(page: Path, out: Path) -> str:
    """Render a page in headless chromium; return what it logged (console messages included)."""
    result = subprocess.run(
        [
            shutil.which("chromium"),
            "--headless",
            "--no-sandbox",  # needed when the tests run as root
            "--disable-gpu",
            f"--user-data-dir={out.parent / 'chromium-profile'}",
            f"--screenshot={out}",
            "--window-size=1200,3000",
            "--enable-logging=stderr",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (apt-get install chromium)")
def test_renders_in_a_headless_browser_without_console_errors(built, tmp_path):
    # The check can fail: a page that logs an error is caught.
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><script>console.error("boom")</script></body></html>')
    assert ":CONSOLE" in screenshot(broken, tmp_path / "broken.png")

    log = screenshot(built[0].output, tmp_path / "report.png")
    assert ":CONSOLE" not in log, log
    shot = (tmp_path / "report.png").read_bytes()
    assert shot.startswith(PNG_MAGIC) and len(shot) > 20_000  # a drawn page, not a blank one
