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

from src import fetch, generate, split, utils
from src.question_templates import GENERIC, Name, keyword_questions, looks_plural, section_questions, sentence_questions
from src.utils import UserError

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "src/data_pipeline.py"

# ---------------------------------------------------------------- helpers


def run_processes(commands: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
    """Run `python src/data_pipeline.py ARGS` for each entry as a real process, all at once."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, SCRIPT, *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
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
        "id": f"{domain}/{utils.slugify(title)}",
        "title": title,
        "domain": domain,
        "url": f"snapshot:corpus/{domain}/{utils.slugify(title)}.md",
        "aliases": [],
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

Aliases: tigers; Panthera tigris

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


def write_topics(path: Path, topics: dict) -> str:
    """A topics file (the format of corpus/topics.yaml); returns its path for params' fetch.topics."""
    path.write_text(yaml.safe_dump({"topics": topics}, sort_keys=False), encoding="utf-8")
    return str(path)


def fetch_params(path: Path, snapshot: Path, topics=TOPICS, source="snapshot") -> Path:
    topics_file = write_topics(path.with_suffix(".topics.yaml"), topics)
    return write_params(path, fetch={"source": source, "snapshot_dir": str(snapshot), "topics": topics_file})


# ---------------------------------------------------------------- fetch


@pytest.fixture(scope="module")
def fetch_runs(tmp_path_factory):
    """Run every fetch command of the tests below at once; returns (tmp dir, results)."""
    tmp = tmp_path_factory.mktemp("fetch")
    good = make_corpus(tmp / "corpus", CORPUS)
    broken = make_corpus(
        tmp / "broken",
        {
            "animals/tiger.md": CORPUS["animals/tiger.md"],
            "animals/lion.md": "Lion\n\nThe lion is a big cat. Lions live in prides.\n\n"
            "## Diet\n\nLions eat zebras. They hunt at night.\n",
        },
    )
    cases = {
        "ok": fetch_params(tmp / "ok.yaml", good),
        "missing_topic": fetch_params(tmp / "missing.yaml", good, {"animals": ["Tiger", "Zebra"]}),
        "unknown_source": fetch_params(tmp / "source.yaml", good, source="dropbox"),
        "unknown_domain": fetch_params(tmp / "domain.yaml", good, {"animals": ["Tiger"], "dinosaurs": ["Tyrannosaurus"]}),
        "titles_not_a_list": fetch_params(tmp / "titles.yaml", good, {"animals": "Tiger"}),
        "malformed_article": fetch_params(tmp / "broken.yaml", broken, {"animals": ["Tiger"]}),
        "malformed_keeps_old": fetch_params(tmp / "broken2.yaml", broken, {"animals": ["Tiger"]}),
    }
    for name in cases:
        (tmp / "out" / name).mkdir(parents=True)
    (tmp / "out" / "malformed_keeps_old" / "articles.jsonl").write_text("what the user had\n")
    commands = {
        name: ["--params", params, "fetch", "--output", tmp / "out" / name / "articles.jsonl"] for name, params in cases.items()
    }
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
    # The optional 'Aliases:' line under the title becomes a list; articles without one get [].
    assert [r["aliases"] for r in records] == [[], [], ["tigers", "Panthera tigris"], []]
    assert records[2]["lead"] == "The tiger is the largest living cat species. Tigers live in Asia."
    heart = records[1]
    # A lead wrapped over two lines is one paragraph joined with a space.
    assert heart["lead"] == (
        "The heart is a muscular organ that pumps blood through the body. "
        "It beats about seventy times a minute. The heart has four chambers."
    )
    assert heart["sections"] == [
        {"heading": "Structure", "text": "The heart has two atria and two ventricles. Valves keep the blood flowing one way."},
        {
            "heading": "Function",
            "text": "The heart pumps blood to the lungs and to the rest of the body. Each beat starts with an electrical signal.",
        },
    ]
    # Paragraphs of one section are joined into its text.
    assert records[0]["sections"][0]["text"] == (
        "The liver makes bile, which helps digest fats. It also stores sugar as glycogen. Liver cells break down many toxins."
    )
    assert "4 articles" in results["ok"].stdout


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("missing_topic", ["{tmp}/missing.topics.yaml:", "animals/Zebra"]),
        ("unknown_source", ["fetch.source", "dropbox"]),
        ("unknown_domain", ["{tmp}/domain.topics.yaml: topics:", "dinosaurs"]),
        ("titles_not_a_list", ["{tmp}/titles.topics.yaml: topics.animals:", "list of titles"]),
        ("malformed_article", ["{tmp}/broken/animals/lion.md:1:", "# Title"]),
    ],
)
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
        fetch.parse_snapshot_article(path, "animals")


def test_parse_snapshot_article_needs_lead_and_section(tmp_path):
    path = tmp_path / "tiger.md"
    path.write_text("# Tiger\n\nThe tiger is a cat. It is big.\n")
    with pytest.raises(UserError, match=re.escape(str(path))):
        fetch.parse_snapshot_article(path, "animals")


def test_parse_snapshot_article_reads_aliases(tmp_path):
    path = tmp_path / "mars.md"
    path.write_text(
        "# Mars\n\nAliases:  the Red Planet ;; planet Mars ; \n\nMars is red. Mars is cold.\n\n"
        "## Orbit\n\nMars orbits the Sun.\nAliases: not an alias line here.\n"
    )
    record = fetch.parse_snapshot_article(path, "astronomy")
    assert record["aliases"] == ["the Red Planet", "planet Mars"]  # trimmed, empty entries dropped
    assert record["lead"] == "Mars is red. Mars is cold."  # the Aliases line is not lead text
    assert record["sections"] == [{"heading": "Orbit", "text": "Mars orbits the Sun. Aliases: not an alias line here."}]
    assert set(record) == set(utils.ARTICLE_FIELDS)


def test_parse_snapshot_article_aliases_only_before_the_lead(tmp_path):
    """'Aliases:' is read only right under the title; once the lead has begun it is lead text."""
    path = tmp_path / "mars.md"
    path.write_text("# Mars\n\nMars is red.\nAliases: the Red Planet\n\n## Orbit\n\nMars orbits the Sun.\n")
    record = fetch.parse_snapshot_article(path, "astronomy")
    assert record["aliases"] == []
    assert record["lead"] == "Mars is red. Aliases: the Red Planet"
    # An article with only an Aliases line and sections still has no lead.
    path.write_text("# Mars\n\nAliases: the Red Planet\n\n## Orbit\n\nMars orbits the Sun.\n")
    with pytest.raises(UserError, match=re.escape(str(path)) + ": an article needs a lead paragraph"):
        fetch.parse_snapshot_article(path, "astronomy")


@pytest.mark.parametrize(
    "title, slug",
    [
        ("Halley's Comet", "halley-s-comet"),
        ("Mercury (planet)", "mercury-planet"),
        ("PH", "ph"),
        ("  Red  fox ", "red-fox"),
    ],
)
def test_slugify(title, slug):
    assert utils.slugify(title) == slug


# ---------------------------------------------------------------- the documented commands


@pytest.fixture(scope="module")
# Long, but one table of inputs and expectations: it reads better whole than cut in pieces.
def documented_runs(tmp_path_factory):
    """The commands of the README/dvc.yaml, with tmp paths, plus --help on each subcommand."""
    tmp = tmp_path_factory.mktemp("documented")
    params = write_params(
        tmp / "params.yaml",
        fetch={
            "source": "snapshot",
            "snapshot_dir": str(make_corpus(tmp / "corpus", CORPUS)),
            "topics": write_topics(tmp / "topics.yaml", TOPICS),
        },
        generate={"max_answer_words": 70, "questions_per_fact": 6, "seed": 7},
        split={"train_size": 0.5, "val_size": 0.25, "test_size": 0.25, "seed": 42},
    )
    utils.write_jsonl(
        tmp / "articles.jsonl", [fetch.parse_snapshot_article(tmp / "corpus" / name, name.split("/")[0]) for name in CORPUS]
    )
    utils.write_jsonl(tmp / "qa_pairs.jsonl", qa_pairs(facts_per_domain=10))
    commands = {
        "fetch": ["--params", params, "fetch", "--output", tmp / "data/raw/articles.jsonl"],
        "generate": [
            "--params",
            params,
            "generate",
            "--input",
            tmp / "articles.jsonl",
            "--output",
            tmp / "data/processed/qa_pairs.jsonl",
        ],
        "split": [
            "--params",
            params,
            "split",
            "--input",
            tmp / "qa_pairs.jsonl",
            "--output-dir",
            tmp / "data/splits",
            "--train-size",
            "0.8",
            "--val-size",
            "0.1",
            "--test-size",
            "0.1",
        ],
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
    pairs = utils.read_pairs(tmp / "data/processed/qa_pairs.jsonl")
    assert pairs and all(set(p) == set(utils.QA_FIELDS) for p in pairs)
    # passages.jsonl is written next to the pairs; every pair's answer is one of its passages.
    passages = {p["id"]: p for p in utils.read_passages(tmp / "data/processed/passages.jsonl")}
    assert all(set(p) == set(utils.PASSAGE_FIELDS) for p in passages.values())
    assert all(p["answer"] == passages[p["fact_id"]]["text"] for p in pairs)
    assert max(Counter(p["fact_id"] for p in pairs).values()) == 6  # questions_per_fact
    summary = json.loads((tmp / "data/processed/generate_summary.json").read_text())
    assert summary["pairs"] == len(pairs) and summary["passages"] == len(passages)


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
    assert sorted(p["id"] for s in splits.values() for p in s) == sorted(
        p["id"] for p in utils.read_jsonl(tmp / "qa_pairs.jsonl")
    )


@pytest.mark.parametrize(
    "command, flags",
    [
        ("fetch", ["--output", "--source"]),
        ("generate", ["--input", "--output", "--max-answer-words"]),
        ("split", ["--input", "--output-dir", "--train-size", "--val-size", "--test-size", "--seed"]),
    ],
)
def test_help(documented_runs, command, flags):
    result = documented_runs[1][f"help_{command}"]
    assert_ok(result)
    assert result.stdout.startswith("usage:") and f" {command} " in result.stdout.splitlines()[0]
    for flag in flags:
        assert flag in result.stdout


# ---------------------------------------------------------------- generate


@pytest.mark.parametrize(
    "lead, title, subject",
    [
        ("The heart is a muscular organ. It pumps blood.", "Heart", "the heart"),
        ("Jupiter is the fifth planet from the Sun. It is big.", "Jupiter", "Jupiter"),
        ("An atom is the smallest unit of an element. Atoms are tiny.", "Atom", "an atom"),
        ("Red blood cells are the most common blood cells. They carry oxygen.", "Red blood cell", "Red blood cells"),
        ("The Sun is the star at the centre of the Solar System.", "Sun", "the Sun"),
        # No 'X is' at the start: the title, without its disambiguation in brackets.
        ("Closest to the Sun, this small world has no moons at all.", "Mercury (planet)", "Mercury"),
        # A subject of more than six words is not taken from the lead.
        ("The largest and brightest of all the comets is famous.", "Halley's Comet (comet)", "Halley's Comet"),
    ],
)
def test_subject_of(lead, title, subject):
    assert generate.subject_of({"lead": lead, "title": title}) == subject


def names_of(*texts_and_plural) -> list[Name]:
    return [Name(text, plural) for text, plural in texts_and_plural]


def test_names_of_lists_the_lead_name_title_and_aliases():
    tiger = article(
        "animals", "Tiger", "The tiger is the largest cat. It lives in Asia.", aliases=["tigers", "Panthera tigris", "The Tiger"]
    )
    # The title is lower-cased where the lead uses it as a common noun; a repeated name
    # (any case) is listed once; a plural alias takes plural verbs.
    assert generate.names_of(tiger) == names_of(
        ("the tiger", False), ("tiger", False), ("tigers", True), ("Panthera tigris", False)
    )
    mars = article("astronomy", "Mars", "Mars is the fourth planet. Mars is red.", aliases=["the Red Planet"])
    assert generate.names_of(mars) == names_of(("Mars", False), ("the Red Planet", False))
    # Wikipedia records have no aliases.
    assert generate.names_of(article("animals", "Koala", "The koala is a marsupial. It eats leaves.")) == names_of(
        ("the koala", False), ("koala", False)
    )


@pytest.mark.parametrize(
    "alias, title, plural",
    [
        ("tigers", "Tiger", True),
        ("koalas", "Koala", True),
        ("red foxes", "Red fox", True),
        ("Panthera tigris", "Tiger", False),  # -is
        ("Phascolarctos cinereus", "Koala", False),  # -us
        ("the Red Planet", "Mars", False),
        ("Himalayas", "Himalayas", False),  # the title itself ends in -s
        ("the Alps", "Alps", False),
        ("glass", "Glass", False),
        ("planet Mars", "Mars", False),
        ("suns", "Sun (star)", True),  # the bracketed part of a title is ignored
    ],
)
def test_looks_plural(alias, title, plural):
    assert looks_plural(alias, title) is plural


def test_name_fill_agrees_with_the_name():
    assert Name("the tiger").fill("What {does} {s} eat?") == "What does the tiger eat?"
    assert Name("tigers", plural=True).fill("What {does} {s} eat?") == "What do tigers eat?"
    assert Name("tigers", plural=True).fill("{Is} {s} endangered?") == "Are tigers endangered?"
    assert (
        Name("tigers", plural=True).fill("How many young {does} {s} have? {has} {was}")
        == "How many young do tigers have? have were"
    )
    assert Name("the tiger").fill("{S}: deer?") == "The tiger: deer?"  # first letter capitalised only


def test_section_questions_use_every_name():
    names = names_of(("the tiger", False), ("tigers", True))
    diet = section_questions("animals", "Diet", names)
    assert diet[:2] == ["What does the tiger eat?", "What does tigers eat?"]  # a fixed phrasing, verbatim
    assert {"What do tigers eat?", "What food do tigers eat?", "What food does the tiger eat?"} <= set(diet)
    assert "What food does tigers eat?" not in diet
    # A {p} phrasing asks about the animals as a group: only a plural name fits it.
    behaviour = section_questions("animals", "Behaviour", names)
    assert "Do tigers live in groups?" in behaviour and not any("Do the tiger" in q for q in behaviour)
    # A real article's heading is mapped onto the vocabulary; one that maps to nothing
    # (or a heading of another domain) still gets well-formed questions by name.
    assert section_questions("animals", "Hunting and diet", names) == section_questions("animals", "Diet", names)
    assert section_questions("animals", "Taxonomy", names)[0] == "What about the taxonomy of the tiger?"
    assert section_questions("geography", "Diet", names)[0] == "What about the diet of the tiger?"
    assert section_questions("animals", "Lead", names)[0] == "What is the tiger?"


@pytest.mark.parametrize(
    "sentence, names, domain, kind, expected",
    [
        (
            "The tiger is the largest living cat species.",
            [("the tiger", False), ("tigers", True)],
            "animals",
            "cat",
            [
                "What is the largest living cat species?",
                "Which cat is the largest living cat species?",
                "Is the tiger the largest living cat species?",
                "Which animal is the largest living cat species?",
            ],
        ),
        (
            "Mount Everest is 8,849 metres high.",
            [("Mount Everest", False)],
            "geography",
            "mountain",
            [
                "How tall is Mount Everest?",
                "Is Mount Everest 8,849 metres high?",
                "Which mountain is 8,849 metres high?",
                "Which place is 8,849 metres high?",
            ],
        ),
        (
            "The Alps are 1,200 kilometres long.",
            [("the Alps", False), ("Alpine peaks", True)],
            "geography",
            "range",  # 'are' asks no inverse question: 'Which range are ...' would not agree
            ["How long is the Alps?", "How long are Alpine peaks?", "Are the Alps 1,200 kilometres long?"],
        ),
        (
            "Jupiter has 95 known moons.",
            [("Jupiter", False), ("the gas giant", False)],
            "astronomy",
            "planet",
            [
                "How many moons does Jupiter have?",
                "How many moons does the gas giant have?",
                "Does Jupiter have 95 known moons?",
                "Which planet has 95 known moons?",
                "Which object in space has 95 known moons?",
            ],
        ),
        (
            "The brain contains roughly 86 billion nerve cells.",
            [("the brain", False)],
            "anatomy",
            "organ",
            [
                "How many cells does the brain have?",
                "Does the brain contain roughly 86 billion nerve cells?",
                "What does the brain contain?",
                "Which organ contains roughly 86 billion nerve cells?",
                "Which part of the body contains roughly 86 billion nerve cells?",
            ],
        ),
        (
            "Oxygen was discovered by Carl Scheele in 1771.",
            [("oxygen", False), ("O2", False), ("dioxygen", False)],
            "chemistry",
            "element",  # a discovery is asked with the first two names only
            [
                "When was oxygen discovered?",
                "When was O2 discovered?",
                "Who discovered oxygen?",
                "Who discovered O2?",
                "Was oxygen discovered by Carl Scheele in 1771?",
                "Which element was discovered by Carl Scheele in 1771?",
                "Which substance was discovered by Carl Scheele in 1771?",
            ],
        ),
        (
            "The pancreas also makes insulin and other hormones.",
            [("the pancreas", False)],
            "anatomy",
            "organ",  # the clause ends at 'and'; an adverb before the verb is skipped
            [
                "Does the pancreas make insulin?",
                "What does the pancreas make?",
                "Which organ makes insulin?",
                "Which part of the body makes insulin?",
            ],
        ),
        (
            "It stores glucose as glycogen, releasing it later.",
            [("the liver", False)],
            "anatomy",
            "organ",  # 'It' opening an article's sentence is the subject
            [
                "Does the liver store glucose as glycogen?",
                "What does the liver store?",
                "Which organ stores glucose as glycogen?",
                "Which part of the body stores glucose as glycogen?",
            ],
        ),
        (
            "Acids react with bases to form salts.",
            [("an acid", False), ("acids", True)],
            "chemistry",
            "compound",  # a plural subject: 'do', the verb as it stands, no inverse question
            ["Do acids react with bases to form salts?", "What do acids react with?"],
        ),
        (
            "The liver can regrow after an injury.",
            [("the liver", False)],
            "anatomy",
            "organ",
            [
                "Can the liver regrow after an injury?",
                "Which organ can regrow after an injury?",
                "Which part of the body can regrow after an injury?",
            ],
        ),
        (
            "The cheetah is a slender, spotted wild cat of Africa and the fastest land animal on Earth.",
            [("the cheetah", False)],
            "animals",
            "cat",  # a superlative later in a sentence about the subject; 'is a slender,' is no statement
            ["What is the fastest land animal on Earth?", "Which cat is the fastest land animal on Earth?"],
        ),
        (
            "Jupiter has the most moons of any planet.",
            [("Jupiter", False)],
            "astronomy",
            "planet",
            [
                "Which planet has the most moons?",
                "Does Jupiter have the most moons of any planet?",
                "Which planet has the most moons of any planet?",
                "Which object in space has the most moons of any planet?",
            ],
        ),
        # Only in a sentence about the subject: here 'the most recent' is about transits.
        ("These transits come in pairs, and the most recent were in 2004.", [("Venus", False)], "astronomy", "planet", []),
        # A statement must open with the subject; 'compounds' followed by 'are' is a noun, not a verb.
        ("The liver makes bile.", [("the kidney", False)], "anatomy", "organ", []),
        ("Tigers are striped.", [("the tiger", False)], "animals", "cat", []),
        ("Carbon compounds are everywhere.", [("carbon", False)], "chemistry", "element", []),
    ],
)
def test_sentence_questions(sentence, names, domain, kind, expected):
    assert sentence_questions(sentence, names_of(*names), domain, kind) == expected


def test_a_passages_sample_takes_the_questions_naming_no_subject_first():
    """'Which organ makes insulin?' is the only way from a fact to a subject the question
    doesn't name: with room for two questions, the look-ups are the ones kept."""
    lead = "The pancreas is an organ behind the stomach. The pancreas also makes insulin and other hormones."
    record = article("anatomy", "Pancreas", lead)
    all_pairs, _, _ = generate.generate_pairs([record], max_words=70, per_fact=ALL, seed=7)
    look_ups = [p["question"] for p in all_pairs if "pancreas" not in p["question"].lower()]
    assert len(look_ups) >= 2 and len(all_pairs) > len(look_ups)
    for seed in (1, 2, 3):
        pairs, _, _ = generate.generate_pairs([record], max_words=70, per_fact=2, seed=seed)
        assert [p["question"] for p in pairs] == [q for q in look_ups if q in {p["question"] for p in pairs}]
        assert all("pancreas" not in p["question"].lower() for p in pairs)


def test_keyword_questions_ask_about_the_rarest_words():
    frequency = {"tigers": 9, "hunt": 5, "deer": 2, "wild": 3, "boar": 1, "night": 4}
    questions = keyword_questions(
        "Tigers mainly hunt deer and wild boar at night.",
        names_of(("the tiger", False), ("tigers", True), ("Panthera tigris", False)),
        frequency,
    )
    # The three rarest words that are not stop words ('mainly' is one), with the first two names.
    assert questions[:6] == [
        "Tell me about boar and the tiger.",
        "Tell me about boar and tigers.",
        "What about the tiger and boar?",
        "What about tigers and boar?",
        "The tiger: boar?",
        "Tigers: boar?",
    ]
    assert {
        kw for kw in ("boar", "deer", "wild", "night", "hunt", "tigers", "mainly") if any(f" {kw}?" in q for q in questions)
    } == {"boar", "deer", "wild"}
    assert len(questions) == 18 and not any("Panthera" in q for q in questions)
    assert keyword_questions("The cat sat on a mat.", names_of(("the cat", False)), {}) == []  # no word of 4+ letters


# ---------------------------------------------------------------- passages

SIX_WORDS = [f"Sentence number {n} has six words." for n in range(1, 8)]


@pytest.mark.parametrize(
    "max_words, sizes",
    [
        (70, [4, 3]),
        (24, [4, 3]),
        (23, [3, 2, 2]),
        (18, [3, 2, 2]),
        (17, [2, 2, 2, 1]),
        (12, [2, 2, 2, 1]),
        (11, [1] * 7),
    ],
)
def test_cut_passages_fewest_even_runs(max_words, sizes):
    runs = generate.cut_passages(SIX_WORDS, max_words)
    assert sorted(len(r) for r in runs) == sorted(sizes)  # which run is the short one is a tie
    assert [s for r in runs for s in r] == SIX_WORDS


def test_cut_passages_edge_cases():
    assert generate.cut_passages([], 70) == []
    assert generate.cut_passages(["One short sentence."], 70) == [["One short sentence."]]
    # A sentence longer than the limit can't share a passage: every sentence stands alone.
    long = " ".join(["word"] * 20) + "."
    assert generate.cut_passages(["Short one.", long, "Short two."], 10) == [["Short one."], [long], ["Short two."]]
    # Uneven sentences: the cut balances the words (12 | 6), not the sentence count (14 | 4).
    sentences = ["A b c d e f g h i j k l.", "A b.", "A b.", "A b."]
    assert generate.cut_passages(sentences, 15) == [sentences[:1], sentences[1:]]


WORD = st.sampled_from(["tigers", "eat", "deer", "the", "liver", "makes", "bile", "at", "night", "5.2", "km"])
SENTENCE = st.builds(
    lambda first, rest: " ".join([first] + rest) + ".",
    st.sampled_from(["Tigers", "The", "Bile", "It", "They", "Deer", "Water"]),
    st.lists(WORD, max_size=14),
)


def n_words(sentences: list[str]) -> int:
    return len(" ".join(sentences).split())


@settings(max_examples=200, deadline=None)
@given(sentences=st.lists(SENTENCE, max_size=12), max_words=st.integers(1, 60))
def test_cut_passages_properties(sentences, max_words):
    runs = generate.cut_passages(sentences, max_words)
    # Every sentence, once, in order; no empty run.
    assert [s for r in runs for s in r] == sentences and all(runs)
    if all(len(s.split()) <= max_words for s in sentences):
        assert all(len(r) <= 4 and n_words(r) <= max_words for r in runs)
        if sentences and len(sentences) <= 4 and n_words(sentences) <= max_words:
            assert runs == [sentences]  # it all fits in one passage
    else:  # some sentence is over the limit on its own: it stands alone, the others still fit
        assert all(len(r) == 1 or (len(r) <= 4 and n_words(r) <= max_words) for r in runs)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 14), width=st.integers(1, 12), max_words=st.integers(1, 60))
def test_cut_passages_equal_sentences_fewest_and_even(n, width, max_words):
    """With sentences of equal length the best cut is known: ceil(n / per_run) runs, where
    per_run is how many sentences fit in one (at most 4), whose sizes differ by at most one."""
    sentences = [" ".join([f"S{i}"] + ["w"] * (width - 1)) + "." for i in range(n)]
    runs = generate.cut_passages(sentences, max_words)
    assert [s for r in runs for s in r] == sentences
    if width > max_words:
        assert len(runs) == n
    else:
        per_run = min(4, max_words // width)
        assert len(runs) == -(-n // per_run)
        sizes = [len(r) for r in runs]
        assert max(sizes) - min(sizes) <= 1 and max(sizes) <= per_run


def test_passages_of_labels_parts_of_a_section():
    art = article(
        "animals",
        "Tiger",
        "The tiger is a cat. It is big.",
        [("Diet", " ".join(SIX_WORDS)), ("Habitat", "Tigers live in Asia. Tigers swim well.")],
    )
    passages = generate.passages_of(art, 17)
    assert [p["section"] for p in passages] == ["Lead", "Diet", "Diet, part 2", "Diet, part 3", "Diet, part 4", "Habitat"]
    assert [p["id"] for p in passages] == [
        "animals/tiger#lead",
        "animals/tiger#diet",
        "animals/tiger#diet-part-2",
        "animals/tiger#diet-part-3",
        "animals/tiger#diet-part-4",
        "animals/tiger#habitat",
    ]
    assert [p["heading"] for p in passages] == ["Lead", "Diet", "Diet", "Diet", "Diet", "Habitat"]
    for p in passages:
        assert p["text"] == " ".join(p["sentences"]) and len(p["text"].split()) <= 17
        assert (p["domain"], p["title"]) == ("animals", "Tiger")
    # The parts of a section, in order, are the section's text.
    assert " ".join(p["text"] for p in passages if p["heading"] == "Diet") == " ".join(SIX_WORDS)
    assert passages[0]["text"] == "The tiger is a cat. It is big."


@pytest.mark.parametrize(
    "first_sentence, section, heading, reason",
    [
        ("It lives in forests.", "Habitat", "Habitat", "dangling_pronoun"),
        ("Its fur is orange.", "Habitat", "Habitat", "dangling_pronoun"),
        ("It's striped.", "Habitat", "Habitat", "dangling_pronoun"),
        ("Such cats are rare.", "Habitat", "Habitat", "dangling_pronoun"),
        ('"They" hunt at night.', "Habitat", "Habitat", "dangling_pronoun"),
        ("Italy has no tigers.", "Habitat", "Habitat", "kept"),  # 'it' only as a whole word
        ("Tigers live in Asia.", "Habitat", "Habitat", "kept"),
        ("They live in Asia.", "Habitat, part 2", "Habitat", "dangling_pronoun"),
    ],
)
def test_standalone(first_sentence, section, heading, reason):
    passage = {"sentences": [first_sentence, "Tigers swim well."], "section": section, "heading": heading}
    assert generate.standalone(passage) == reason
    # One sentence is too few for a section's first passage, not for a later part.
    one = {"sentences": ["Tigers live in Asia."], "section": section, "heading": heading}
    assert generate.standalone(one) == ("too_few_sentences" if section == heading else "kept")


# ---------------------------------------------------------------- Q&A pairs

ALL = 1000  # questions_per_fact: keep every candidate question


def questions_of(pairs, fact_id) -> set[str]:
    return {p["question"] for p in pairs if p["fact_id"] == fact_id}


# Long, but one table of inputs and expectations: it reads better whole than cut in pieces.
def test_questions_follow_domain_and_section():
    articles = [
        article(
            "animals",
            "Tiger",
            "The tiger is the largest cat. It lives in Asia.",
            [("Diet", "Tigers hunt deer. A tiger kills with a bite.")],
        ),
        article(
            "anatomy",
            "Liver",
            "The liver is an organ. It makes bile.",
            [
                ("Function", "The liver cleans the blood. The liver stores sugar."),
                ("Location", "The liver lies below the diaphragm. Ribs protect it."),
            ],
        ),
        article(
            "astronomy",
            "Jupiter",
            "Jupiter is the fifth planet from the Sun. Jupiter is a gas giant.",
            [("Orbit", "Jupiter orbits the Sun every twelve years. Its orbit is nearly circular.")],
        ),
        article(
            "geography",
            "Japan",
            "Japan is an island country in East Asia. Japan has many volcanoes.",
            [("Location", "Japan lies in the Pacific Ocean. Japan is east of Korea.")],
        ),
    ]
    pairs, passages, _ = generate.generate_pairs(articles, max_words=70, per_fact=ALL, seed=7)
    assert "What does the tiger eat?" in questions_of(pairs, "animals/tiger#diet")
    assert "What does the liver do?" in questions_of(pairs, "anatomy/liver#function")
    assert {"What is Jupiter?", "Tell me about Jupiter.", "What do you know about Jupiter?"} <= questions_of(
        pairs, "astronomy/jupiter#lead"
    )
    assert "What is the orbit of Jupiter like?" in questions_of(pairs, "astronomy/jupiter#orbit")
    assert "What is the tiger?" in questions_of(pairs, "animals/tiger#lead")
    assert "What is the largest cat?" in questions_of(pairs, "animals/tiger#lead")  # from the lead's superlative
    # The same heading is asked differently in different domains.
    liver, japan = questions_of(pairs, "anatomy/liver#location"), questions_of(pairs, "geography/japan#location")
    assert "Where in the body is the liver?" in liver and "Where in the body is Japan?" not in japan
    assert "Which continent is Japan in?" in japan and "Which continent is the liver in?" not in liver
    # A section's phrasings are asked only about that section.
    assert "What does the tiger eat?" not in questions_of(pairs, "animals/tiger#lead")
    by_fact = {p["fact_id"]: p for p in pairs}
    assert by_fact["animals/tiger#diet"]["answer"] == "Tigers hunt deer. A tiger kills with a bite."
    assert by_fact["animals/tiger#diet"]["section"] == "Diet" and by_fact["animals/tiger#lead"]["section"] == "Lead"
    assert [p["id"] for p in passages] == [
        "animals/tiger#lead",
        "animals/tiger#diet",
        "anatomy/liver#lead",
        "anatomy/liver#function",
        "anatomy/liver#location",
        "astronomy/jupiter#lead",
        "astronomy/jupiter#orbit",
        "geography/japan#lead",
        "geography/japan#location",
    ]


def test_aliases_are_asked_with_agreeing_verbs():
    tiger = article(
        "animals",
        "Tiger",
        "The tiger is the largest cat. The tiger lives in Asia.",
        [
            ("Diet", "Tigers hunt deer and wild boar. A tiger kills with a bite to the neck."),
            ("Behaviour", "Tigers live alone. Tigers mark their territory."),
        ],
        aliases=["tigers", "Panthera tigris"],
    )
    pairs, _, _ = generate.generate_pairs([tiger], max_words=70, per_fact=ALL, seed=7)
    diet = questions_of(pairs, "animals/tiger#diet")
    assert {
        "What do tigers eat?",
        "What food do tigers eat?",
        "What does Panthera tigris eat?",
        "What does the tiger eat?",
    } <= diet
    assert "What food does tigers eat?" not in diet and "What food do Panthera tigris eat?" not in diet
    assert "Do tigers live in groups?" in questions_of(pairs, "animals/tiger#behaviour")
    assert {"What are tigers?", "What is Panthera tigris?"} <= questions_of(pairs, "animals/tiger#lead")
    # Without the aliases, none of these are asked.
    pairs, _, _ = generate.generate_pairs([tiger | {"aliases": []}], max_words=70, per_fact=ALL, seed=7)
    assert not {"What do tigers eat?", "What does Panthera tigris eat?", "Do tigers live in groups?", "What are tigers?"} & {
        p["question"] for p in pairs
    }
    assert not any("Panthera" in p["question"] for p in pairs)


def test_only_a_sections_first_passage_gets_its_phrasings():
    diet = (
        "Tigers hunt deer near forest streams. Wild boar are another common prey. Tigers sometimes catch fish "
        "in rivers. Young tigers learn hunting from mothers. Adult tigers eat forty kilograms nightly. Leftover "
        "meat gets hidden under leaves. Tigers rarely attack healthy adult elephants."
    )  # 7 sentences of 6 words
    art = article("animals", "Tiger", "The tiger is a cat. The tiger is big.", [("Diet", diet)])
    pairs, passages, _ = generate.generate_pairs([art], max_words=17, per_fact=ALL, seed=7)
    names = generate.names_of(art)
    diet_phrasings = set(section_questions("animals", "Diet", names))
    assert "What does the tiger eat?" in questions_of(pairs, "animals/tiger#diet")
    # Among the candidates (before any duplicate is skipped): all phrasings on the first part, none on the others.
    for passage in generate.passages_of(art, 17)[1:]:
        candidates = set(generate.passage_questions(art, passage, names, {}))
        if passage["section"] == "Diet":
            assert diet_phrasings <= candidates
        else:
            assert candidates and not candidates & diet_phrasings, passage["section"]
    for part in (2, 3, 4):
        asked = questions_of(pairs, f"animals/tiger#diet-part-{part}")
        assert asked and not asked & diet_phrasings
        assert {p["section"] for p in pairs if p["fact_id"] == f"animals/tiger#diet-part-{part}"} == {f"Diet, part {part}"}
    assert [p["section"] for p in passages] == ["Lead", "Diet", "Diet, part 2", "Diet, part 3", "Diet, part 4"]


def corpus_articles(tmp_path) -> list[dict]:
    return [fetch.parse_snapshot_article(path, path.parent.name) for path in sorted(make_corpus(tmp_path, CORPUS).rglob("*.md"))]


def test_pairs_of_a_fact_share_its_passage(tmp_path):
    pairs, passages, summary = generate.generate_pairs(corpus_articles(tmp_path), max_words=20, per_fact=3, seed=7)
    by_id = {p["id"]: p for p in passages}
    assert len(by_id) == len(passages) == summary["passages"]
    assert len({p["id"] for p in pairs}) == len(pairs) == summary["pairs"]
    assert len({p["question"].lower() for p in pairs}) == len(pairs)  # no question asked twice, in any case
    per_fact = Counter(p["fact_id"] for p in pairs)
    assert set(per_fact.values()) == {3}  # questions_per_fact, where enough candidates
    for fact_id in per_fact:
        same = [p for p in pairs if p["fact_id"] == fact_id]
        passage = by_id[fact_id]
        assert {p["answer"] for p in same} == {passage["text"]}
        assert {(p["title"], p["section"], p["domain"]) for p in same} == {
            (passage["title"], passage["section"], passage["domain"])
        }
        assert [p["id"] for p in same] == [f"{fact_id}/{n}" for n in range(3)]
    # Some section was cut into parts at 20 words, and its parts are facts of their own.
    assert any(", part 2" in p["section"] for p in pairs)
    # Different facts have different answers.
    answers = {next(p["answer"] for p in pairs if p["fact_id"] == fact) for fact in per_fact}
    assert len(answers) == len(per_fact)


def test_generation_is_deterministic_and_seeded(tmp_path):
    articles = corpus_articles(tmp_path / "corpus")
    first = generate.generate_pairs(articles, max_words=70, per_fact=3, seed=7)
    assert generate.generate_pairs(articles, max_words=70, per_fact=3, seed=7) == first
    other = generate.generate_pairs(articles, max_words=70, per_fact=3, seed=8)
    assert other[1] == first[1]  # the same passages
    assert {p["fact_id"] for p in other[0]} == {p["fact_id"] for p in first[0]}
    assert [p["question"] for p in other[0]] != [p["question"] for p in first[0]]  # other questions sampled
    assert {p["question"] for p in other[0]} != {p["question"] for p in first[0]}
    # And through generate(): the same params give byte-identical files.
    utils.write_jsonl(tmp_path / "articles.jsonl", articles)
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        params = utils.Params({"max_answer_words": 70, "questions_per_fact": 3, "seed": seed}, "test: generate")
        generate.generate(tmp_path / "articles.jsonl", tmp_path / name / "qa_pairs.jsonl", params)
    files = ("qa_pairs.jsonl", "passages.jsonl", "generate_summary.json")
    read = lambda d: {f: (tmp_path / d / f).read_bytes() for f in files}  # noqa: E731
    assert read("a") == read("b")
    assert read("a")["qa_pairs.jsonl"] != read("c")["qa_pairs.jsonl"]
    assert read("a")["passages.jsonl"] == read("c")["passages.jsonl"]


def test_an_earlier_passage_keeps_a_shared_question():
    """Two articles with the same subject ('the tiger'): the first keeps each question, the
    second skips it, and every skipped candidate is counted."""
    articles = [
        article(
            "animals",
            "Tiger",
            "The tiger is the largest cat. The tiger has a striped coat.",
            [("Diet", "Tigers hunt deer and wild boar. Tigers kill with a bite to the neck.")],
        ),
        article(
            "animals",
            "Bengal tiger",
            "The tiger is a big cat of India. Many live in national parks.",
            [("Diet", "Bengal tigers eat deer. Bengal tigers also eat buffalo.")],
        ),
    ]
    pairs, passages, summary = generate.generate_pairs(articles, max_words=70, per_fact=ALL, seed=7)
    tiger_eat = [p for p in pairs if p["question"] == "What does the tiger eat?"]
    assert len(tiger_eat) == 1 and tiger_eat[0]["fact_id"] == "animals/tiger#diet"
    assert "What is the tiger?" in questions_of(pairs, "animals/tiger#lead")
    assert "What is the tiger?" not in questions_of(pairs, "animals/bengal-tiger#lead")
    # Each passage asks all its candidates except those an earlier passage asked.
    frequency = Counter(w for p in passages for w in set(re.findall(r"[a-z][a-z-]{3,}", p["text"].lower())))
    seen, skipped = set(), 0
    for art in articles:
        for passage in generate.passages_of(art, 70):
            candidates = set(generate.passage_questions(art, passage, generate.names_of(art), frequency))
            fresh = {q for q in candidates if q.lower() not in seen}
            assert questions_of(pairs, passage["id"]) == fresh
            skipped += len(candidates) - len(fresh)
            seen |= {q.lower() for q in fresh}
    assert summary["duplicate_question"] == skipped > 0


@pytest.fixture(scope="module")
# Long, but one table of inputs and expectations: it reads better whole than cut in pieces.
def generate_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("generate")
    long_text = (
        "Tigers raise their cubs in dense cover far from other adult tigers for many months. "
        "The mother leaves the cubs hidden while she hunts and returns to feed them after dark."
    )
    articles = [
        article(
            "animals",
            "Tiger",
            "The tiger is the largest cat. It has a striped coat. Tigers live in Asia.",
            [
                ("Diet", "Tigers hunt deer and wild boar. They kill with a bite to the neck."),
                ("Habitat", "It lives in forests and swamps. Tigers also swim well."),  # dangling_pronoun
                ("Behaviour", "Tigers live alone."),  # too_few_sentences
                ("History", "The cat ran. A dog sat."),  # no animal heading: GENERIC questions
                ("Reproduction", long_text),  # 2 passages at 30 words: a 1-sentence first (too_few_sentences), part 2 kept
            ],
            aliases=["tigers"],
        ),
        # Same subject ('the tiger'): its lead and Diet questions repeat the first article's.
        article(
            "animals",
            "Bengal tiger",
            "The tiger is a big cat of India. Many live in national parks.",
            [
                ("Diet", "Bengal tigers eat deer. Bengal tigers also eat buffalo."),
            ],
        ),
        article(
            "anatomy",
            "Liver",
            "The liver is an organ in the abdomen. The liver cleans the blood.",
            [
                ("Function", "The liver makes bile. The liver also stores sugar."),
            ],
        ),
    ]
    utils.write_jsonl(tmp / "articles.jsonl", articles)
    params = write_params(tmp / "params.yaml", generate={"max_answer_words": 30, "questions_per_fact": 3, "seed": 7})

    good = json.dumps(article(sections=[("Diet", "Tigers eat deer. Tigers eat boar.")]))
    no_lead = {k: v for k, v in article().items() if k != "lead"}
    no_aliases = {k: v for k, v in article().items() if k != "aliases"}
    bad_inputs = {
        "bad_json": good + "\n" + '{"id": "animals/lion", "title": \n',
        "missing_key": good + "\n" + json.dumps(no_lead) + "\n",
        "wrong_type": json.dumps(article() | {"sections": "Diet: tigers eat deer."}) + "\n",
        "unknown_domain": good + "\n\n" + json.dumps(article(domain="dinosaurs")) + "\n",  # a blank line 2
        "bad_section": json.dumps(article() | {"sections": [{"heading": "Diet"}]}) + "\n",
        "missing_aliases": good + "\n" + json.dumps(no_aliases) + "\n",
        "bad_aliases": json.dumps(article(aliases="tigers")) + "\n",
        "bad_json_keeps_old": good + "\n" + "not json\n",
    }
    commands = {
        "ok": [
            "--params",
            params,
            "generate",
            "--input",
            tmp / "articles.jsonl",
            "--output",
            tmp / "out" / "ok" / "qa_pairs.jsonl",
        ],
        # --max-answer-words overrides params.yaml's 30.
        "flag": [
            "--params",
            params,
            "generate",
            "--input",
            tmp / "articles.jsonl",
            "--output",
            tmp / "out" / "flag" / "qa_pairs.jsonl",
            "--max-answer-words",
            "12",
        ],
    }
    for name, text in bad_inputs.items():
        (tmp / f"{name}.jsonl").write_text(text, encoding="utf-8")
        (tmp / "out" / name).mkdir(parents=True)
        commands[name] = [
            "--params",
            params,
            "generate",
            "--input",
            tmp / f"{name}.jsonl",
            "--output",
            tmp / "out" / name / "qa_pairs.jsonl",
        ]
    (tmp / "out" / "bad_json_keeps_old" / "qa_pairs.jsonl").write_text("old pairs\n")
    (tmp / "out" / "bad_json_keeps_old" / "passages.jsonl").write_text("old passages\n")
    (tmp / "out" / "bad_json_keeps_old" / "generate_summary.json").write_text("{}\n")
    # Params without the new keys are an error naming the key.
    for key in ("questions_per_fact", "seed"):
        values = {"max_answer_words": 30, "questions_per_fact": 3, "seed": 7}
        del values[key]
        (tmp / "out" / f"no_{key}").mkdir(parents=True)
        commands[f"no_{key}"] = [
            "--params",
            write_params(tmp / f"no_{key}.yaml", generate=values),
            "generate",
            "--input",
            tmp / "articles.jsonl",
            "--output",
            tmp / "out" / f"no_{key}" / "qa_pairs.jsonl",
        ]
    # Values that would write an empty or wrong result are an error naming the key.
    for key, value in (("max_answer_words", -5), ("questions_per_fact", 0)):
        values = {"max_answer_words": 30, "questions_per_fact": 3, "seed": 7, key: value}
        (tmp / "out" / f"low_{key}").mkdir(parents=True)
        commands[f"low_{key}"] = [
            "--params",
            write_params(tmp / f"low_{key}.yaml", generate=values),
            "generate",
            "--input",
            tmp / "articles.jsonl",
            "--output",
            tmp / "out" / f"low_{key}" / "qa_pairs.jsonl",
        ]
    return tmp, run_all(commands)


# Long, but one table of inputs and expectations: it reads better whole than cut in pieces.
def test_generate_writes_pairs_passages_and_summary(generate_runs):
    tmp, results = generate_runs
    assert_ok(results["ok"])
    out = tmp / "out" / "ok"
    pairs = utils.read_pairs(out / "qa_pairs.jsonl")
    passages = utils.read_passages(out / "passages.jsonl")
    summary = json.loads((out / "generate_summary.json").read_text())
    # Every passage is listed, kept or not, in article order.
    assert [p["id"] for p in passages] == [
        "animals/tiger#lead",
        "animals/tiger#diet",
        "animals/tiger#habitat",
        "animals/tiger#behaviour",
        "animals/tiger#history",
        "animals/tiger#reproduction",
        "animals/tiger#reproduction-part-2",
        "animals/bengal-tiger#lead",
        "animals/bengal-tiger#diet",
        "anatomy/liver#lead",
        "anatomy/liver#function",
    ]
    assert [p["section"] for p in passages][5:7] == ["Reproduction", "Reproduction, part 2"]
    kept = [
        "anatomy/liver#function",
        "anatomy/liver#lead",
        "animals/bengal-tiger#diet",
        "animals/bengal-tiger#lead",
        "animals/tiger#diet",
        "animals/tiger#history",
        "animals/tiger#lead",
        "animals/tiger#reproduction-part-2",
    ]
    assert sorted({p["fact_id"] for p in pairs}) == kept
    assert summary == {
        "dangling_pronoun": 1,
        "duplicate_question": summary["duplicate_question"],
        "kept": 8,
        "pairs": 24,
        "passages": 11,
        "too_few_sentences": 2,
    }
    assert summary["duplicate_question"] > 0  # the Bengal tiger's 'the tiger' questions
    assert len(pairs) == 24 and set(Counter(p["fact_id"] for p in pairs).values()) == {3}  # questions_per_fact
    history = {p["question"] for p in pairs if p["fact_id"] == "animals/tiger#history"}
    generic = [re.escape(t).replace(r"\{h\}", "history").replace(r"\{s\}", "(the )?tigers?") for t in GENERIC]
    assert history and all(any(re.fullmatch(g, q, re.I) for g in generic) for q in history)
    text = {p["id"]: p["text"] for p in passages}
    assert all(p["answer"] == text[p["fact_id"]] for p in pairs)
    assert len({p["question"].lower() for p in pairs}) == len(pairs)
    assert {p["section"] for p in pairs if p["fact_id"] == "animals/tiger#reproduction-part-2"} == {"Reproduction, part 2"}
    assert sorted(p.name for p in out.iterdir()) == ["generate_summary.json", "passages.jsonl", "qa_pairs.jsonl"]
    assert "24 pairs" in results["ok"].stdout


def test_generate_max_answer_words_flag(generate_runs):
    tmp, results = generate_runs
    assert_ok(results["flag"])
    passages = utils.read_passages(tmp / "out" / "flag" / "passages.jsonl")
    ok_passages = utils.read_passages(tmp / "out" / "ok" / "passages.jsonl")
    assert len(passages) > len(ok_passages)
    assert all(len(p["text"].split()) <= 12 or len(utils.split_sentences(p["text"])) == 1 for p in passages)
    assert any(len(p["text"].split()) > 12 for p in ok_passages)


@pytest.mark.parametrize(
    "case, line, fragments",
    [
        ("bad_json", 2, ["invalid JSON"]),
        ("missing_key", 2, ["'lead'"]),
        ("wrong_type", 1, ["'sections'"]),
        ("unknown_domain", 3, ["dinosaurs"]),
        ("bad_section", 1, ["'heading'", "'text'"]),
        ("missing_aliases", 2, ["missing key 'aliases'"]),
        ("bad_aliases", 1, ["'aliases' must be list"]),
    ],
)
def test_generate_errors_leave_no_output(generate_runs, case, line, fragments):
    tmp, results = generate_runs
    assert_one_line_error(results[case], f"{tmp / f'{case}.jsonl'}:{line}:", *fragments)
    assert list((tmp / "out" / case).iterdir()) == []


@pytest.mark.parametrize("key", ["questions_per_fact", "seed"])
def test_generate_param_errors_leave_no_output(generate_runs, key):
    tmp, results = generate_runs
    assert_one_line_error(results[f"no_{key}"], f"{tmp / f'no_{key}.yaml'}: generate: missing key '{key}'")
    assert list((tmp / "out" / f"no_{key}").iterdir()) == []


@pytest.mark.parametrize("key", ["max_answer_words", "questions_per_fact"])
def test_generate_values_below_one_are_errors_that_leave_no_output(generate_runs, key):
    tmp, results = generate_runs
    assert_one_line_error(results[f"low_{key}"], f"{tmp / f'low_{key}.yaml'}: generate: key '{key}' must be at least 1")
    assert list((tmp / "out" / f"low_{key}").iterdir()) == []


def test_generate_error_keeps_existing_output(generate_runs):
    tmp, results = generate_runs
    assert_one_line_error(results["bad_json_keeps_old"], f"{tmp / 'bad_json_keeps_old.jsonl'}:2:")
    out = tmp / "out" / "bad_json_keeps_old"
    assert (out / "qa_pairs.jsonl").read_text() == "old pairs\n"
    assert (out / "passages.jsonl").read_text() == "old passages\n"
    assert (out / "generate_summary.json").read_text() == "{}\n"
    assert len(list(out.iterdir())) == 3


def test_record_errors_count_blank_lines(tmp_path):
    """The line number in an error is the file's line, even after a blank line."""
    path = tmp_path / "articles.jsonl"
    path.write_text(json.dumps(article()) + "\n\n" + json.dumps(article(domain="dinosaurs")) + "\n")
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:3: unknown domain 'dinosaurs'"):
        utils.read_articles(path)


# ---------------------------------------------------------------- split


def qa_pairs(facts_per_domain: int, domains=utils.DOMAINS, paraphrases: int = 3) -> list[dict]:
    pairs = []
    for domain in domains:
        for n in range(facts_per_domain):
            fact_id = f"{domain}/topic-{n}#lead"
            for k in range(paraphrases):
                pairs.append(
                    {
                        "id": f"{fact_id}/{k}",
                        "fact_id": fact_id,
                        "domain": domain,
                        "title": f"Topic {n}",
                        "section": "Lead",
                        "question": f"Question {k} about {domain} {n}?",
                        "answer": f"Topic {n} is a {domain} topic. It has facts.",
                    }
                )
    return pairs


SIZES = {"train_size": 0.8, "val_size": 0.1, "test_size": 0.1}


def test_split_keeps_facts_together_and_stratifies():
    pairs = qa_pairs(facts_per_domain=20)
    splits = split.split_pairs(pairs, SIZES, seed=42)
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


@pytest.mark.parametrize(
    "facts_per_domain, sizes",
    [
        (10, {"train_size": 0.6, "val_size": 0.2, "test_size": 0.2}),
        (20, {"train_size": 0.7, "val_size": 0.2, "test_size": 0.1}),
        (37, SIZES),
    ],
)
def test_split_sizes_roughly_respected(facts_per_domain, sizes):
    splits = split.split_pairs(qa_pairs(facts_per_domain), sizes, seed=3)
    total = facts_per_domain * len(utils.DOMAINS)
    for name in ("train", "val", "test"):
        facts = {p["fact_id"] for p in splits[name]}
        assert abs(len(facts) - sizes[f"{name}_size"] * total) <= len(utils.DOMAINS), (name, len(facts))
        assert {p["domain"] for p in splits[name]} == set(utils.DOMAINS)


def test_split_same_seed_same_files_other_seed_differs(tmp_path):
    utils.write_jsonl(tmp_path / "qa.jsonl", qa_pairs(facts_per_domain=20))
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        split.split(tmp_path / "qa.jsonl", tmp_path / name, SIZES, seed)
    read = lambda d: {n: (tmp_path / d / f"{n}.jsonl").read_bytes() for n in ("train", "val", "test")}  # noqa: E731
    assert read("a") == read("b")
    assert read("a")["train"] != read("c")["train"] and read("a")["test"] != read("c")["test"]


def test_split_too_few_facts_is_a_user_error(tmp_path):
    pairs = qa_pairs(facts_per_domain=20, domains=utils.DOMAINS[:-1]) + qa_pairs(facts_per_domain=1, domains=["weather"])
    utils.write_jsonl(tmp_path / "qa.jsonl", pairs)
    with pytest.raises(UserError, match=rf"^{re.escape(str(tmp_path / 'qa.jsonl'))}: cannot split") as err:
        split.split(tmp_path / "qa.jsonl", tmp_path / "splits", SIZES, 42)
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
    commands = {
        name: ["--params", p, "split", "--input", tmp / "qa.jsonl", "--output-dir", tmp / "out" / name, *flags]
        for name, (p, flags) in cases.items()
    }
    return tmp, run_all(commands)


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("sum_not_one", ["must be 1", "0.9"]),
        ("zero_size", ["test_size", "between 0 and 1"]),
        ("negative_size", ["val_size", "-0.1"]),
        ("bad_params", ["must be 1", "1.2"]),
    ],
)
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
    with pytest.raises(RuntimeError), utils.atomic_path(target) as tmp:
        tmp.write_text("half a file")
        raise RuntimeError("crash half-way")
    assert list(tmp_path.iterdir()) == []

    target.write_text("what the user had")
    with pytest.raises(RuntimeError), utils.atomic_path(target) as tmp:
        tmp.write_text("half a file")
        raise RuntimeError("crash half-way")
    assert list(tmp_path.iterdir()) == [target] and target.read_text() == "what the user had"

    with utils.atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent
        tmp.write_text("new")
    assert list(tmp_path.iterdir()) == [target] and target.read_text() == "new"


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("Mars is red. It has two moons.", ["Mars is red.", "It has two moons."]),
        ("The crater is 5.2 kilometres wide. It is deep.", ["The crater is 5.2 kilometres wide.", "It is deep."]),
        (
            "It weighs about 1.5 kilograms. About 3.5 billion years ago, life began.",
            ["It weighs about 1.5 kilograms.", "About 3.5 billion years ago, life began."],
        ),
        ("Is it hot? Yes! Very.", ["Is it hot?", "Yes!", "Very."]),
        ("  One sentence only.  ", ["One sentence only."]),
        ("", []),
    ],
)
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
