"""Tests for the data stages (fetch from the snapshot, generate Q&A pairs, split) and utils.

Bad input is tested through the command line, the way a user meets it: a one-line error
naming the file and line (or the params key), a non-zero exit, and no output left behind.
A new Python that imports scikit-learn takes about 1.5 s to start, so the documented
commands (and one error) run as real processes, started together; the many error cases
run the script's own `__main__` code in this process (`run_cli`), the same code path
without the start-up cost.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import runpy
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import data_pipeline
import utils
from utils import UserError

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "src/data_pipeline.py"

# ---------------------------------------------------------------- helpers


def run_processes(commands: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
    """Run `python src/data_pipeline.py ARGS` for each entry as a real process, all at once."""
    procs = {
        name: subprocess.Popen([sys.executable, SCRIPT, *map(str, args)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, args in commands.items()
    }
    results = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return results


def run_cli(*args) -> subprocess.CompletedProcess:
    """Run `python src/data_pipeline.py ARGS` in this process: the script's `__main__` code
    with sys.argv set, stdout and stderr captured, and the exit code from SystemExit."""
    argv = [SCRIPT, *map(str, args)]
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, sys.argv = sys.argv, argv
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            runpy.run_path(str(ROOT / SCRIPT), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved_argv
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def run_all(commands: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
    return {name: run_cli(*args) for name, args in commands.items()}


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Non-zero exit, and stderr is exactly one 'error: ...' line holding every fragment."""
    assert result.returncode != 0, f"expected a failure, got rc 0:\n{result.stdout}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not a one-line error:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stdout}\n{result.stderr}"


def write_params(path: Path, **sections) -> Path:
    path.write_text(yaml.safe_dump(sections, sort_keys=False), encoding="utf-8")
    return path


def article(domain="animals", title="Tiger", lead=None, sections=(), **extra) -> dict:
    """An article record as fetch writes it."""
    record = {
        "id": f"{domain}/{data_pipeline.slugify(title)}", "title": title, "domain": domain,
        "url": f"snapshot:corpus/{domain}/{data_pipeline.slugify(title)}.md",
        "lead": lead if lead is not None else f"The {title.lower()} is a thing. It is well known.",
        "sections": [{"heading": h, "text": t} for h, t in sections],
    }
    record.update(extra)
    return record


# ---------------------------------------------------------------- a tiny snapshot corpus

CORPUS = {
    "anatomy/heart.md": """# Heart

The heart is a muscular organ that pumps blood through the body.
It beats about seventy times a minute. The heart has four chambers.

## Structure

The heart has two atria and two ventricles. Valves keep the blood flowing one way.

## Function

The heart pumps blood to the lungs and to the rest of the body. Each beat starts with an electrical signal.
""",
    "anatomy/liver.md": """# Liver

The liver is a large organ in the upper right abdomen. The liver makes bile.

## Function

The liver makes bile, which helps digest fats. It also stores sugar as glycogen.

Liver cells break down many toxins.

## Location

The liver lies just below the diaphragm. Most of it is covered by the lower ribs.
""",
    "animals/tiger.md": """# Tiger

The tiger is the largest living cat species. Tigers live in Asia.

## Diet

Tigers hunt deer and wild boar. A tiger kills with a bite to the neck.

## Habitat

Tigers live in forests, grasslands and swamps. Some swim between islands.
""",
    "animals/red-fox.md": """# Red fox

The red fox is a small wild dog with a bushy tail. Red foxes live on four continents.

## Diet

Red foxes eat mice, rabbits, birds and fruit. They also raid bins in towns.
""",
    # In the snapshot but not in the topic list: fetch must leave it out.
    "animals/wolf.md": """# Wolf

The wolf is a large wild dog. Wolves hunt in packs.

## Behaviour

Wolves live in family groups. A pack defends its territory.
""",
}
TOPICS = {"anatomy": ["Liver", "Heart"], "animals": ["Tiger", "Red fox"]}


def make_corpus(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def fetch_params(path: Path, snapshot: Path, topics=TOPICS, source="snapshot") -> Path:
    return write_params(path, fetch={"source": source, "snapshot_dir": str(snapshot), "topics": topics})


# ---------------------------------------------------------------- fetch

@pytest.fixture(scope="module")
def fetch_runs(tmp_path_factory):
    """Run every fetch command of the tests below at once; returns (tmp dir, results)."""
    tmp = tmp_path_factory.mktemp("fetch")
    good = make_corpus(tmp / "corpus", CORPUS)
    broken = make_corpus(tmp / "broken", {
        "animals/tiger.md": CORPUS["animals/tiger.md"],
        "animals/lion.md": "Lion\n\nThe lion is a big cat. Lions live in prides.\n\n## Diet\n\nLions eat zebras. They hunt at night.\n",
    })
    cases = {
        "ok": fetch_params(tmp / "ok.yaml", good),
        "missing_topic": fetch_params(tmp / "missing.yaml", good, {"animals": ["Tiger", "Zebra"]}),
        "unknown_source": fetch_params(tmp / "source.yaml", good, source="dropbox"),
        "unknown_domain": fetch_params(tmp / "domain.yaml", good, {"animals": ["Tiger"], "dinosaurs": ["Tyrannosaurus"]}),
        "malformed_article": fetch_params(tmp / "broken.yaml", broken, {"animals": ["Tiger"]}),
        "malformed_keeps_old": fetch_params(tmp / "broken2.yaml", broken, {"animals": ["Tiger"]}),
    }
    for name in cases:
        (tmp / "out" / name).mkdir(parents=True)
    (tmp / "out" / "malformed_keeps_old" / "articles.jsonl").write_text("what the user had\n")
    commands = {name: ["--params", params, "fetch", "--output", tmp / "out" / name / "articles.jsonl"]
                for name, params in cases.items()}
    return tmp, run_all(commands)


def test_fetch_snapshot_records(fetch_runs):
    tmp, results = fetch_runs
    assert_ok(results["ok"])
    records = utils.read_jsonl(tmp / "out" / "ok" / "articles.jsonl")
    # Order follows the topic list (not the file order); the unlisted wolf is left out.
    assert [r["id"] for r in records] == ["anatomy/liver", "anatomy/heart", "animals/tiger", "animals/red-fox"]
    assert [r["title"] for r in records] == ["Liver", "Heart", "Tiger", "Red fox"]
    assert [r["domain"] for r in records] == ["anatomy", "anatomy", "animals", "animals"]
    for record in records:
        assert set(record) == set(utils.ARTICLE_FIELDS)
        assert record["url"].startswith("snapshot:") and record["url"].endswith(f"{record['id']}.md")
    heart = records[1]
    # A lead wrapped over two lines is one paragraph joined with a space.
    assert heart["lead"] == ("The heart is a muscular organ that pumps blood through the body. "
                             "It beats about seventy times a minute. The heart has four chambers.")
    assert heart["sections"] == [
        {"heading": "Structure", "text": "The heart has two atria and two ventricles. Valves keep the blood flowing one way."},
        {"heading": "Function", "text": "The heart pumps blood to the lungs and to the rest of the body. "
                                        "Each beat starts with an electrical signal."},
    ]
    # Paragraphs of one section are joined into its text.
    assert records[0]["sections"][0]["text"] == ("The liver makes bile, which helps digest fats. "
                                                 "It also stores sugar as glycogen. Liver cells break down many toxins.")
    assert "4 articles" in results["ok"].stdout


@pytest.mark.parametrize("case, fragments", [
    ("missing_topic", ["fetch.topics", "animals/Zebra"]),
    ("unknown_source", ["fetch.source", "dropbox"]),
    ("unknown_domain", ["fetch.topics", "dinosaurs"]),
    ("malformed_article", ["{tmp}/broken/animals/lion.md:1:", "# Title"]),
])
def test_fetch_errors_leave_no_output(fetch_runs, case, fragments):
    tmp, results = fetch_runs
    assert_one_line_error(results[case], *(f.format(tmp=tmp) for f in fragments))
    assert list((tmp / "out" / case).iterdir()) == []  # no output, no leftover temp file


def test_fetch_error_keeps_existing_output(fetch_runs):
    tmp, results = fetch_runs
    assert_one_line_error(results["malformed_keeps_old"], f"{tmp}/broken/animals/lion.md:1:")
    out = tmp / "out" / "malformed_keeps_old"
    assert [p.name for p in out.iterdir()] == ["articles.jsonl"]
    assert (out / "articles.jsonl").read_text() == "what the user had\n"


def test_fetch_param_errors_name_the_params_file_in_use(fetch_runs):
    """With --params P, a bad value is reported against P, not against 'params.yaml'."""
    tmp, results = fetch_runs
    assert_one_line_error(results["unknown_source"], str(tmp / "source.yaml"))


def test_parse_snapshot_article_rejects_deeper_headings(tmp_path):
    path = tmp_path / "tiger.md"
    path.write_text("# Tiger\n\nThe tiger is a cat. It is big.\n\n## Diet\n\nMeat. Lots.\n\n### Prey\n\nDeer.\n")
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:9: only '# Title' and '## Section'"):
        data_pipeline.parse_snapshot_article(path, "animals")


def test_parse_snapshot_article_needs_lead_and_section(tmp_path):
    path = tmp_path / "tiger.md"
    path.write_text("# Tiger\n\nThe tiger is a cat. It is big.\n")
    with pytest.raises(UserError, match=re.escape(str(path))):
        data_pipeline.parse_snapshot_article(path, "animals")


@pytest.mark.parametrize("title, slug", [
    ("Halley's Comet", "halley-s-comet"), ("Mercury (planet)", "mercury-planet"), ("PH", "ph"), ("  Red  fox ", "red-fox"),
])
def test_slugify(title, slug):
    assert data_pipeline.slugify(title) == slug


# ---------------------------------------------------------------- the documented commands

@pytest.fixture(scope="module")
def documented_runs(tmp_path_factory):
    """The commands of the README/dvc.yaml, with tmp paths, plus --help on each subcommand."""
    tmp = tmp_path_factory.mktemp("documented")
    params = write_params(
        tmp / "params.yaml",
        fetch={"source": "snapshot", "snapshot_dir": str(make_corpus(tmp / "corpus", CORPUS)), "topics": TOPICS},
        generate={"max_answer_words": 70},
        split={"train_size": 0.5, "val_size": 0.25, "test_size": 0.25, "seed": 42},
    )
    utils.write_jsonl(tmp / "articles.jsonl", [data_pipeline.parse_snapshot_article(tmp / "corpus" / name, name.split("/")[0])
                                               for name in CORPUS])
    utils.write_jsonl(tmp / "qa_pairs.jsonl", qa_pairs(facts_per_domain=10))
    commands = {
        "fetch": ["--params", params, "fetch", "--output", tmp / "data/raw/articles.jsonl"],
        "generate": ["--params", params, "generate", "--input", tmp / "articles.jsonl", "--output", tmp / "data/processed/qa_pairs.jsonl"],
        "split": ["--params", params, "split", "--input", tmp / "qa_pairs.jsonl", "--output-dir", tmp / "data/splits",
                  "--train-size", "0.8", "--val-size", "0.1", "--test-size", "0.1"],
        # An error as a real process: exit code 1 and one line on stderr, output untouched.
        "error": ["--params", params, "generate", "--input", tmp / "bad.jsonl", "--output", tmp / "keep/qa_pairs.jsonl"],
    }
    (tmp / "bad.jsonl").write_text('{"id": "animals/tiger"}\n', encoding="utf-8")
    (tmp / "keep").mkdir()
    (tmp / "keep/qa_pairs.jsonl").write_text("what the user had\n")
    results = run_processes(commands)
    results |= {f"help_{c}": run_cli(c, "--help") for c in ("fetch", "generate", "split")}
    return tmp, results


def test_documented_fetch_command(documented_runs):
    tmp, results = documented_runs
    assert_ok(results["fetch"])
    assert len(utils.read_jsonl(tmp / "data/raw/articles.jsonl")) == 4


def test_documented_generate_command(documented_runs):
    tmp, results = documented_runs
    assert_ok(results["generate"])
    pairs = utils.read_jsonl(tmp / "data/processed/qa_pairs.jsonl")
    assert pairs and all(set(p) == set(utils.QA_FIELDS) for p in pairs)
    assert (tmp / "data/processed/generate_summary.json").is_file()


def test_error_in_a_real_process(documented_runs):
    tmp, results = documented_runs
    assert_one_line_error(results["error"], f"{tmp / 'bad.jsonl'}:1: missing key 'title'")
    assert results["error"].returncode == 1 and results["error"].stdout == ""
    # The old output is untouched; no summary and no temp file were written next to it.
    assert [p.name for p in (tmp / "keep").iterdir()] == ["qa_pairs.jsonl"]
    assert (tmp / "keep/qa_pairs.jsonl").read_text() == "what the user had\n"


def test_documented_split_command(documented_runs):
    tmp, results = documented_runs
    assert_ok(results["split"])
    splits = {name: utils.read_jsonl(tmp / f"data/splits/{name}.jsonl") for name in ("train", "val", "test")}
    # The flags (0.8/0.1/0.1) override params.yaml's 0.5/0.25/0.25.
    assert [len({p["fact_id"] for p in splits[n]}) for n in ("train", "val", "test")] == [48, 6, 6]
    assert sorted(p["id"] for s in splits.values() for p in s) == sorted(p["id"] for p in utils.read_jsonl(tmp / "qa_pairs.jsonl"))


@pytest.mark.parametrize("command, flags", [
    ("fetch", ["--output", "--source"]),
    ("generate", ["--input", "--output", "--max-answer-words"]),
    ("split", ["--input", "--output-dir", "--train-size", "--val-size", "--test-size", "--seed"]),
])
def test_help(documented_runs, command, flags):
    result = documented_runs[1][f"help_{command}"]
    assert_ok(result)
    assert result.stdout.startswith("usage:") and f" {command} " in result.stdout.splitlines()[0]
    for flag in flags:
        assert flag in result.stdout


# ---------------------------------------------------------------- generate

@pytest.mark.parametrize("lead, title, subject", [
    ("The heart is a muscular organ. It pumps blood.", "Heart", "the heart"),
    ("Jupiter is the fifth planet from the Sun. It is big.", "Jupiter", "Jupiter"),
    ("An atom is the smallest unit of an element. Atoms are tiny.", "Atom", "an atom"),
    ("Red blood cells are the most common blood cells. They carry oxygen.", "Red blood cell", "Red blood cells"),
    ("The Sun is the star at the centre of the Solar System.", "Sun", "the Sun"),
    # No 'X is' at the start: the title, without its disambiguation in brackets.
    ("Closest to the Sun, this small world has no moons at all.", "Mercury (planet)", "Mercury"),
    # A subject of more than six words is not taken from the lead.
    ("The largest and brightest of all the comets is famous.", "Halley's Comet (comet)", "Halley's Comet"),
])
def test_subject_of(lead, title, subject):
    assert data_pipeline.subject_of({"lead": lead, "title": title}) == subject


def questions_of(pairs, fact_id):
    return [p["question"] for p in pairs if p["fact_id"] == fact_id]


def test_questions_follow_domain_and_section():
    articles = [
        article("animals", "Tiger", "The tiger is the largest cat. It lives in Asia.",
                [("Diet", "Tigers hunt deer. A tiger kills with a bite.")]),
        article("anatomy", "Liver", "The liver is an organ. It makes bile.",
                [("Function", "The liver cleans the blood. The liver stores sugar."),
                 ("Location", "The liver lies below the diaphragm. Ribs protect it.")]),
        article("astronomy", "Jupiter", "Jupiter is the fifth planet from the Sun. Jupiter is a gas giant.",
                [("Orbit", "Jupiter orbits the Sun every twelve years. Its orbit is nearly circular.")]),
        article("geography", "Japan", "Japan is an island country in East Asia. Japan has many volcanoes.",
                [("Location", "Japan lies in the Pacific Ocean. Japan is east of Korea.")]),
    ]
    pairs, _ = data_pipeline.generate_pairs(articles, max_words=70)
    assert questions_of(pairs, "animals/tiger#diet")[0] == "What does the tiger eat?"
    assert questions_of(pairs, "anatomy/liver#function")[0] == "What does the liver do?"
    assert questions_of(pairs, "astronomy/jupiter#lead") == ["What is Jupiter?", "Tell me about Jupiter.", "What do you know about Jupiter?"]
    assert questions_of(pairs, "astronomy/jupiter#orbit")[0] == "What is the orbit of Jupiter like?"
    # The same heading is asked differently in different domains.
    assert questions_of(pairs, "anatomy/liver#location")[0] == "Where is the liver located?"
    assert questions_of(pairs, "geography/japan#location")[0] == "Where is Japan?"
    assert questions_of(pairs, "animals/tiger#lead")[0] == "What is the tiger?"
    by_fact = {p["fact_id"]: p for p in pairs}
    assert by_fact["animals/tiger#diet"]["answer"] == "Tigers hunt deer. A tiger kills with a bite."
    assert by_fact["animals/tiger#diet"]["section"] == "Diet" and by_fact["animals/tiger#lead"]["section"] == "Lead"


def test_paraphrases_share_one_fact_id(tmp_path):
    articles = [data_pipeline.parse_snapshot_article(path, path.parent.name)
                for path in sorted(make_corpus(tmp_path, CORPUS).rglob("*.md"))]
    pairs, _ = data_pipeline.generate_pairs(articles, max_words=70)
    assert len({p["id"] for p in pairs}) == len(pairs)
    per_fact = Counter(p["fact_id"] for p in pairs)
    assert set(per_fact.values()) == {3}  # three phrasings per fact
    for fact_id in per_fact:
        same = [p for p in pairs if p["fact_id"] == fact_id]
        assert len({p["answer"] for p in same}) == 1
        assert len({p["question"] for p in same}) == 3
        assert len({(p["title"], p["section"], p["domain"]) for p in same}) == 1
    # Different facts have different answers.
    answers = {fact: next(p["answer"] for p in pairs if p["fact_id"] == fact) for fact in per_fact}
    assert len(set(answers.values())) == len(answers)


def test_answers_are_two_to_four_sentences_within_the_word_limit():
    text = " ".join(f"Sentence number {n} has six words." for n in range(1, 8))
    art = article("animals", "Tiger", "The tiger is a cat. It is big.", [("Diet", text), ("Habitat", text), ("Behaviour", text)])
    for max_words, sentences in [(70, 4), (24, 4), (23, 3), (18, 3), (17, 2), (12, 2)]:
        pairs, _ = data_pipeline.generate_pairs([art], max_words)
        answer = next(p["answer"] for p in pairs if p["section"] == "Diet")
        assert len(utils.split_sentences(answer)) == sentences, (max_words, answer)
        assert len(answer.split()) <= max_words
        assert text.startswith(answer)
    pairs, summary = data_pipeline.generate_pairs([art], 11)  # not even two sentences fit
    assert [p["section"] for p in pairs] == ["Lead"] * 3 and summary["too_long"] == 3


WORD = st.sampled_from(["tigers", "eat", "deer", "the", "liver", "makes", "bile", "at", "night", "5.2", "km"])
SENTENCE = st.builds(lambda first, rest: " ".join([first] + rest) + ".",
                     st.sampled_from(["Tigers", "The", "Bile", "It", "They", "Deer", "Water"]),
                     st.lists(WORD, max_size=12))


@settings(max_examples=150, deadline=None)
@given(sentences=st.lists(SENTENCE, max_size=7), max_words=st.integers(1, 60))
def test_make_answer_properties(sentences, max_words):
    text = " ".join(sentences)
    answer, reason = data_pipeline.make_answer(text, max_words)
    if len(sentences) < 2:
        assert (answer, reason) == (None, "too_few_sentences")
    elif sentences[0].split()[0].rstrip(".") in ("It", "They"):
        assert (answer, reason) == (None, "dangling_pronoun")
    elif len(" ".join(sentences[:2]).split()) > max_words:
        assert (answer, reason) == (None, "too_long")
    else:
        assert reason == "kept"
        n = len(utils.split_sentences(answer))
        assert 2 <= n <= 4 and len(answer.split()) <= max_words
        assert answer == " ".join(sentences[:n])
        # As long as allowed: one more sentence would break the 4-sentence or word limit.
        assert n == min(4, len(sentences)) or len(" ".join(sentences[:n + 1]).split()) > max_words


@pytest.fixture(scope="module")
def generate_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("generate")
    long_text = ("Tigers raise their cubs in dense cover far from other adult tigers for many months. "
                 "The mother leaves the cubs hidden while she hunts and returns to feed them after dark.")
    articles = [
        article("animals", "Tiger", "The tiger is the largest cat. It has a striped coat. Tigers live in Asia.", [
            ("Diet", "Tigers hunt deer and wild boar. They kill with a bite to the neck."),
            ("Habitat", "It lives in forests and swamps. Tigers also swim well."),      # dangling_pronoun
            ("Behaviour", "Tigers live alone."),                                       # too_few_sentences
            ("History", "Tigers were painted on old scrolls. Kings hunted them."),     # unknown_heading
            ("Reproduction", long_text),                                               # too_long (> 30 words)
        ]),
        # Same subject ('the tiger'): its lead and Diet questions repeat the first article's.
        article("animals", "Bengal tiger", "The tiger is a big cat of India. Many live in national parks.", [
            ("Diet", "Bengal tigers eat deer. Bengal tigers also eat buffalo."),
        ]),
        article("anatomy", "Liver", "The liver is an organ in the abdomen. The liver cleans the blood.", [
            ("Function", "The liver makes bile. The liver also stores sugar."),
        ]),
    ]
    utils.write_jsonl(tmp / "articles.jsonl", articles)
    params = write_params(tmp / "params.yaml", generate={"max_answer_words": 30})

    good = json.dumps(article(sections=[("Diet", "Tigers eat deer. Tigers eat boar.")]))
    no_lead = {k: v for k, v in article().items() if k != "lead"}
    bad_inputs = {
        "bad_json": good + "\n" + '{"id": "animals/lion", "title": \n',
        "missing_key": good + "\n" + json.dumps(no_lead) + "\n",
        "wrong_type": json.dumps(article() | {"sections": "Diet: tigers eat deer."}) + "\n",
        "unknown_domain": good + "\n" + good + "\n" + json.dumps(article(domain="dinosaurs")) + "\n",
        "bad_section": json.dumps(article() | {"sections": [{"heading": "Diet"}]}) + "\n",
        "bad_json_keeps_old": good + "\n" + "not json\n",
    }
    commands = {"ok": ["--params", params, "generate", "--input", tmp / "articles.jsonl", "--output", tmp / "out" / "ok" / "qa_pairs.jsonl"]}
    for name, text in bad_inputs.items():
        (tmp / f"{name}.jsonl").write_text(text, encoding="utf-8")
        (tmp / "out" / name).mkdir(parents=True)
        commands[name] = ["--params", params, "generate", "--input", tmp / f"{name}.jsonl", "--output", tmp / "out" / name / "qa_pairs.jsonl"]
    (tmp / "out" / "bad_json_keeps_old" / "qa_pairs.jsonl").write_text("old pairs\n")
    (tmp / "out" / "bad_json_keeps_old" / "generate_summary.json").write_text("{}\n")
    return tmp, run_all(commands)


def test_generate_writes_pairs_and_summary(generate_runs):
    tmp, results = generate_runs
    assert_ok(results["ok"])
    out = tmp / "out" / "ok"
    pairs = utils.read_jsonl(out / "qa_pairs.jsonl")
    summary = json.loads((out / "generate_summary.json").read_text())
    assert summary == {
        "dangling_pronoun": 1, "duplicate_question": 6, "kept": 6, "pairs": 12,
        "too_few_sentences": 1, "too_long": 1, "unknown_heading": 1,
    }
    assert len(pairs) == 12 == summary["pairs"]
    assert sorted({p["fact_id"] for p in pairs}) == ["anatomy/liver#function", "anatomy/liver#lead", "animals/tiger#diet", "animals/tiger#lead"]
    # The first article to ask a question keeps it; the repeats were dropped.
    tiger_diet = [p for p in pairs if p["question"] == "What does the tiger eat?"]
    assert len(tiger_diet) == 1 and tiger_diet[0]["answer"] == "Tigers hunt deer and wild boar. They kill with a bite to the neck."
    assert len({p["question"].lower() for p in pairs}) == len(pairs)
    assert "What does the liver do?" in {p["question"] for p in pairs}
    assert sorted(p.name for p in out.iterdir()) == ["generate_summary.json", "qa_pairs.jsonl"]


@pytest.mark.parametrize("case, line, fragments", [
    ("bad_json", 2, ["invalid JSON"]),
    ("missing_key", 2, ["'lead'"]),
    ("wrong_type", 1, ["'sections'"]),
    ("unknown_domain", 3, ["dinosaurs"]),
    ("bad_section", 1, ["'heading'", "'text'"]),
])
def test_generate_errors_leave_no_output(generate_runs, case, line, fragments):
    tmp, results = generate_runs
    assert_one_line_error(results[case], f"{tmp / f'{case}.jsonl'}:{line}:", *fragments)
    assert list((tmp / "out" / case).iterdir()) == []


def test_generate_error_keeps_existing_output(generate_runs):
    tmp, results = generate_runs
    assert_one_line_error(results["bad_json_keeps_old"], f"{tmp / 'bad_json_keeps_old.jsonl'}:2:")
    out = tmp / "out" / "bad_json_keeps_old"
    assert (out / "qa_pairs.jsonl").read_text() == "old pairs\n"
    assert (out / "generate_summary.json").read_text() == "{}\n"
    assert len(list(out.iterdir())) == 2


def test_record_errors_count_blank_lines(tmp_path):
    """The line number in an error is the file's line, even after a blank line."""
    path = tmp_path / "articles.jsonl"
    path.write_text(json.dumps(article()) + "\n\n" + json.dumps(article(domain="dinosaurs")) + "\n")
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:3: unknown domain 'dinosaurs'"):
        data_pipeline.read_articles(path)


# ---------------------------------------------------------------- split

def qa_pairs(facts_per_domain: int, domains=utils.DOMAINS, paraphrases: int = 3) -> list[dict]:
    pairs = []
    for domain in domains:
        for n in range(facts_per_domain):
            fact_id = f"{domain}/topic-{n}#lead"
            for k in range(paraphrases):
                pairs.append({"id": f"{fact_id}/{k}", "fact_id": fact_id, "domain": domain, "title": f"Topic {n}",
                              "section": "Lead", "question": f"Question {k} about {domain} {n}?",
                              "answer": f"Topic {n} is a {domain} topic. It has facts."})
    return pairs


SIZES = {"train_size": 0.8, "val_size": 0.1, "test_size": 0.1}


def test_split_keeps_facts_together_and_stratifies():
    pairs = qa_pairs(facts_per_domain=20)
    splits = data_pipeline.split_pairs(pairs, SIZES, seed=42)
    facts = {name: {p["fact_id"] for p in records} for name, records in splits.items()}
    assert not facts["train"] & facts["val"] and not facts["train"] & facts["test"] and not facts["val"] & facts["test"]
    # Nothing lost or doubled.
    assert sorted(p["id"] for records in splits.values() for p in records) == sorted(p["id"] for p in pairs)
    # Sizes (in facts) as asked: 120 facts -> 96 / 12 / 12.
    assert [len(facts[n]) for n in ("train", "val", "test")] == [96, 12, 12]
    # Stratified: each domain has its share in every split (20 facts -> 16 / 2 / 2).
    for name, expected in [("train", 16), ("val", 2), ("test", 2)]:
        per_domain = Counter(p["domain"] for p in splits[name] if p["id"].endswith("/0"))
        assert per_domain == {d: expected for d in utils.DOMAINS}, (name, per_domain)


@pytest.mark.parametrize("facts_per_domain, sizes", [(10, {"train_size": 0.6, "val_size": 0.2, "test_size": 0.2}),
                                                     (20, {"train_size": 0.7, "val_size": 0.2, "test_size": 0.1}),
                                                     (37, SIZES)])
def test_split_sizes_roughly_respected(facts_per_domain, sizes):
    splits = data_pipeline.split_pairs(qa_pairs(facts_per_domain), sizes, seed=3)
    total = facts_per_domain * len(utils.DOMAINS)
    for name in ("train", "val", "test"):
        facts = {p["fact_id"] for p in splits[name]}
        assert abs(len(facts) - sizes[f"{name}_size"] * total) <= len(utils.DOMAINS), (name, len(facts))
        assert {p["domain"] for p in splits[name]} == set(utils.DOMAINS)


def test_split_same_seed_same_files_other_seed_differs(tmp_path):
    utils.write_jsonl(tmp_path / "qa.jsonl", qa_pairs(facts_per_domain=20))
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        data_pipeline.split(tmp_path / "qa.jsonl", tmp_path / name, SIZES, seed)
    read = lambda d: {n: (tmp_path / d / f"{n}.jsonl").read_bytes() for n in ("train", "val", "test")}  # noqa: E731
    assert read("a") == read("b")
    assert read("a")["train"] != read("c")["train"] and read("a")["test"] != read("c")["test"]


def test_split_too_few_facts_is_a_user_error(tmp_path):
    pairs = qa_pairs(facts_per_domain=20, domains=utils.DOMAINS[:-1]) + qa_pairs(facts_per_domain=1, domains=["weather"])
    utils.write_jsonl(tmp_path / "qa.jsonl", pairs)
    with pytest.raises(UserError, match=rf"^{re.escape(str(tmp_path / 'qa.jsonl'))}: cannot split") as err:
        data_pipeline.split(tmp_path / "qa.jsonl", tmp_path / "splits", SIZES, 42)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "splits").exists()


@pytest.fixture(scope="module")
def split_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("split")
    utils.write_jsonl(tmp / "qa.jsonl", qa_pairs(facts_per_domain=10))
    params = write_params(tmp / "params.yaml", split={"train_size": 0.8, "val_size": 0.1, "test_size": 0.1, "seed": 1})
    bad_params = write_params(tmp / "bad.yaml", split={"train_size": 0.8, "val_size": 0.3, "test_size": 0.1, "seed": 1})
    cases = {
        "sum_not_one": (params, ["--train-size", "0.7", "--val-size", "0.1", "--test-size", "0.1"]),
        "zero_size": (params, ["--train-size", "0.9", "--val-size", "0.1", "--test-size", "0"]),
        "negative_size": (params, ["--train-size", "0.9", "--val-size", "-0.1", "--test-size", "0.2"]),
        "bad_params": (bad_params, []),
        "keeps_old": (params, ["--train-size", "0.7", "--val-size", "0.1", "--test-size", "0.1"]),
    }
    (tmp / "out" / "keeps_old").mkdir(parents=True)
    (tmp / "out" / "keeps_old" / "train.jsonl").write_text("old train\n")
    commands = {name: ["--params", p, "split", "--input", tmp / "qa.jsonl", "--output-dir", tmp / "out" / name, *flags]
                for name, (p, flags) in cases.items()}
    return tmp, run_all(commands)


@pytest.mark.parametrize("case, fragments", [
    ("sum_not_one", ["must be 1", "0.9"]),
    ("zero_size", ["test_size", "between 0 and 1"]),
    ("negative_size", ["val_size", "-0.1"]),
    ("bad_params", ["must be 1", "1.2"]),
])
def test_split_bad_sizes(split_runs, case, fragments):
    tmp, results = split_runs
    assert_one_line_error(results[case], *fragments)
    out = tmp / "out" / case
    assert not out.exists() or list(out.iterdir()) == []


def test_split_error_keeps_existing_output(split_runs):
    tmp, results = split_runs
    assert_one_line_error(results["keeps_old"], "must be 1")
    out = tmp / "out" / "keeps_old"
    assert [p.name for p in out.iterdir()] == ["train.jsonl"] and (out / "train.jsonl").read_text() == "old train\n"


# ---------------------------------------------------------------- utils

def test_read_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": \n')
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:4: invalid JSON"):
        utils.read_jsonl(path)
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:2: expected a JSON object"):
        utils.read_jsonl(path)
    with pytest.raises(UserError, match=rf"^{re.escape(str(tmp_path / 'nope.jsonl'))}: file not found"):
        utils.read_jsonl(tmp_path / "nope.jsonl")


def test_write_then_read_jsonl_round_trips(tmp_path):
    records = [{"title": "El Niño", "n": 1}, {"title": "Halley's Comet", "tags": ["a", "b"]}]
    utils.write_jsonl(tmp_path / "sub" / "x.jsonl", records)
    assert utils.read_jsonl(tmp_path / "sub" / "x.jsonl") == records
    assert "El Niño" in (tmp_path / "sub" / "x.jsonl").read_text(encoding="utf-8")


def test_atomic_path_leaves_nothing_when_the_block_raises(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with utils.atomic_path(target) as tmp:
            tmp.write_text("half a file")
            raise RuntimeError("crash half-way")
    assert list(tmp_path.iterdir()) == []

    target.write_text("what the user had")
    with pytest.raises(RuntimeError):
        with utils.atomic_path(target) as tmp:
            tmp.write_text("half a file")
            raise RuntimeError("crash half-way")
    assert list(tmp_path.iterdir()) == [target] and target.read_text() == "what the user had"

    with utils.atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_text("new")
    assert list(tmp_path.iterdir()) == [target] and target.read_text() == "new"


@pytest.mark.parametrize("text, sentences", [
    ("Mars is red. It has two moons.", ["Mars is red.", "It has two moons."]),
    ("The crater is 5.2 kilometres wide. It is deep.", ["The crater is 5.2 kilometres wide.", "It is deep."]),
    ("It weighs about 1.5 kilograms. About 3.5 billion years ago, life began.",
     ["It weighs about 1.5 kilograms.", "About 3.5 billion years ago, life began."]),
    ("Is it hot? Yes! Very.", ["Is it hot?", "Yes!", "Very."]),
    ("  One sentence only.  ", ["One sentence only."]),
    ("", []),
])
def test_split_sentences(text, sentences):
    assert utils.split_sentences(text) == sentences


@given(st.text(alphabet="ab .!?5A\n", max_size=40))
def test_split_sentences_only_cuts_at_whitespace(text):
    parts = utils.split_sentences(text)
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")
    assert all(p == p.strip() and p for p in parts)


def test_load_params(tmp_path):
    good = write_params(tmp_path / "p.yaml", split={"seed": 1})
    assert utils.load_params("split", good) == {"seed": 1}
    with pytest.raises(UserError, match=rf"^{re.escape(str(good))}: missing section 'train'$"):
        utils.load_params("train", good)
    bad = tmp_path / "bad.yaml"
    bad.write_text("split:\n  seed: [1, 2\n")
    with pytest.raises(UserError, match=rf"^{re.escape(str(bad))}: invalid YAML") as err:
        utils.load_params("split", bad)
    assert "\n" not in str(err.value)
    listing = tmp_path / "list.yaml"
    listing.write_text("- split\n")
    with pytest.raises(UserError, match=rf"^{re.escape(str(listing))}: missing section 'split'"):
        utils.load_params("split", listing)
    with pytest.raises(UserError, match=rf"^{re.escape(str(tmp_path / 'none.yaml'))}: file not found"):
        utils.load_params("split", tmp_path / "none.yaml")


def test_require():
    assert utils.require(utils.Params({"lr": 1}, "params.yaml: train"), "lr", float) == 1.0
    assert isinstance(utils.require(utils.Params({"lr": 1}, "params.yaml: train"), "lr", float), float)
    with pytest.raises(UserError, match=r"^params.yaml: train: missing key 'lr'$"):
        utils.require(utils.Params({}, "params.yaml: train"), "lr", float)
    with pytest.raises(UserError, match=r"key 'steps' must be int, got True"):
        utils.require(utils.Params({"steps": True}, "params.yaml: train"), "steps", int)
    with pytest.raises(UserError, match=r"key 'steps' must be int, got '10'"):
        utils.require(utils.Params({"steps": "10"}, "params.yaml: train"), "steps", int)
