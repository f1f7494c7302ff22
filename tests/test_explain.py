"""explain.py on the tiny trained model of conftest: the token table, the candidates at every
step, the source and confidence, and the attention PNG; and model.attend's `watch`."""

import ast
import math
import re
import struct
import subprocess
import sys

import pytest
import torch
from conftest import ENV, REPO, headers, passages

from src import qa_format
from src.model import MiniTransformer, ModelConfig

QUESTION = "What does the tiger eat?"
STEP = re.compile(r"^\s*(\d+)  ('.*?'|\".*?\")\s+([\d.]+)  (sure|hesitated|\s)\s*  (.*)$")
CANDIDATE = re.compile(r"('.*?'|\".*?\") ([\d.]+)")


def explain(*args, module: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "src.explain"] if module else [sys.executable, "src/explain.py"]
    return subprocess.run(command + [str(a) for a in args], cwd=REPO, capture_output=True, text=True, timeout=120, env=ENV)


@pytest.fixture(scope="module")
def explained(trained, tmp_path_factory):
    world, outputs, _ = trained
    out_dir = tmp_path_factory.mktemp("explain")
    result = explain(QUESTION, "--model", outputs["checkpoint"], "--params", world["params"], "--out-dir", out_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout, out_dir, world, outputs


def step_lines(stdout: str, title: str) -> list[re.Match]:
    """The parsed rows of one step table (the lines after `title` up to the next blank line)."""
    block = stdout.split(title, 1)[1].split("\n\n", 1)[0]
    rows = [STEP.match(line) for line in block.splitlines()[2:]]
    assert rows and all(rows), block
    return rows


def test_prints_the_question_as_the_tokenizer_splits_it(explained, tok):
    stdout = explained[0]
    table = stdout.split("\n\n", 1)[0].splitlines()[2:]
    ids = [int(line.split()[1]) for line in table]
    assert ids == qa_format.encode_prompt(tok, QUESTION)
    assert "'<|question|>'" in table[0] and "'<|answer|>'" in table[-1]
    merged = [line for line in table if " = " in line]  # a merged token shows the two tokens it joins
    assert merged and all(int(line.split()[1]) >= 256 for line in merged)


def test_every_step_shows_its_top_candidates_sorted(explained):
    stdout = explained[0]
    header = step_lines(stdout, "Step 1, name the source")
    text = step_lines(stdout, "Step 2, recite")
    for row in header + text:
        candidates = [(token, float(p)) for token, p in CANDIDATE.findall(row.group(5))]
        probabilities = [p for _, p in candidates]
        assert 1 <= len(candidates) <= 5
        assert all(0 <= p <= 1 for p in probabilities) and probabilities == sorted(probabilities, reverse=True)
        assert candidates[0][0] == row.group(2)  # greedy: the pick is the likeliest candidate
        assert (row.group(4) == "sure") == (float(row.group(3)) >= 0.9)
    assert all(len(CANDIDATE.findall(row.group(5))) == 5 for row in text)  # the whole vocabulary competes
    assert text[-1].group(2) == "'<|endoftext|>'"


def test_names_a_real_source_with_the_confidence_ask_uses(explained):
    stdout, _, world, outputs = explained
    article, section = re.search(r"Source: article '(.*)', section '(.*)'", stdout).groups()
    assert (article, section) in {(p["title"], p["section"]) for p in passages()}
    confidence = float(re.search(r"Confidence: ([\d.]+)", stdout).group(1))
    # the check (eval.recital_weight > 0): every section of the named article and of the best
    # covered one, best score first
    named = "".join(ast.literal_eval(row.group(2)) for row in step_lines(stdout, "Step 1, name the source"))
    block = stdout.split("Check the source:", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    row_pattern = r"\s*([\d.]+)\s+([\d.]+)\s+(\d+)%\s+(\d+)%\s+(yes|no)\s+(-?[\d.]+)\s+(.*?):(  <- picked)?$"
    rows = [re.match(row_pattern, line) for line in block]
    assert rows and all(rows), block
    assert all(float(row.group(2)) >= float(row.group(1)) - 0.001 for row in rows)  # a section holds its parts
    shown = {row.group(7) + ":" for row in rows}
    assert {h for h in headers() if qa_format.source_title(h) == qa_format.source_title(named)} <= shown
    shown_articles = {qa_format.source_title(s) for s in shown}
    assert len(shown_articles) <= 2
    assert shown == {h for h in headers() if qa_format.source_title(h) in shown_articles}  # whole articles
    scores = [float(row.group(6)) for row in rows]
    assert scores == sorted(scores, reverse=True) and rows[0].group(8)  # the best score is picked
    assert rows[0].group(7) == f"{article} ({section})"
    article_probability = sum(float(row.group(1)) for row in rows if qa_format.source_title(row.group(7) + ":") == article)
    assert confidence == pytest.approx(math.sqrt(min(1.0, article_probability)) * int(rows[0].group(3)) / 100, abs=0.02)
    # The same answer ask.py gives: same source, same text.
    asked = subprocess.run(
        [sys.executable, "-m", "src.ask", QUESTION, "--checkpoint", outputs["checkpoint"], "--params", world["params"]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    answer = re.search(r"Answer: (.*)", stdout).group(1)
    assert asked.stdout.strip() == f"{qa_format.source_header(article, section)} {answer}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_writes_one_attention_png_named_in_the_output(explained):
    stdout, out_dir, _, _ = explained
    pngs = list(out_dir.iterdir())
    assert [p.name for p in pngs] == ["attention-what-does-the-tiger-eat.png"]
    assert str(pngs[0]) in stdout
    width, height = png_size(pngs[0].read_bytes())
    assert 800 <= width <= 10_000 and 800 <= height <= 10_000  # 2 layers x 2 heads, ~100 tokens each way
    assert pngs[0].stat().st_size > 20_000


def test_runs_as_a_module_and_repeats_byte_for_byte(explained, tmp_path):
    _, out_dir, world, outputs = explained
    result = explain(QUESTION, "--model", outputs["checkpoint"], "--params", world["params"], "--out-dir", tmp_path, module=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.replace(str(tmp_path), str(out_dir)) == explained[0]
    name = "attention-what-does-the-tiger-eat.png"
    assert (tmp_path / name).read_bytes() == (out_dir / name).read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["  "], "the question is empty"),
        ([QUESTION, "--top", "0"], "--top must be at least 1"),
        ([QUESTION, "--model", "nowhere/model.pt"], "nowhere/model.pt: file not found"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(trained, tmp_path, args, message):
    world = trained[0]
    outputs = trained[1]
    model = [] if "--model" in args else ["--model", outputs["checkpoint"]]
    result = explain(*args, *model, "--params", world["params"], "--out-dir", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_watch_sees_the_attention_weights_and_changes_nothing():
    torch.manual_seed(0)
    model = MiniTransformer(ModelConfig(vocab_size=50, max_seq_len=16, emb_dim=16, num_layers=2, num_heads=2)).eval()
    ids = torch.randint(0, 50, (1, 10))
    plain = model(ids)
    seen = []
    for block in model.blocks:
        block.attn.watch = seen.append
    watched = model(ids)
    assert torch.equal(plain, watched)
    assert [w.shape for w in seen] == [(1, 2, 10, 10)] * 2
    torch.testing.assert_close(seen[0].sum(-1), torch.ones(1, 2, 10))  # each query's weights add up to 1
    assert (seen[0].triu(1) == 0).all()  # and none goes to a later token
