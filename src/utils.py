"""Helpers shared by the pipeline stages: params, JSONL files, errors, seeding, device.

Only what two or more stages need lives here. model.py and tokenizer.py import nothing
from the project, so each can be read (and reused) on its own.
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import math
import os
import random
import re
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the data stages never import torch: they start fast
    import torch

ROOT = Path(__file__).resolve().parent.parent  # the project: where ask.py and explain.py find their default files
DOMAINS = ("astronomy", "anatomy", "animals", "geography", "chemistry", "weather")


class UserError(Exception):
    """A problem with the user's input (file, record, param): reported in one line, exit 1."""


def run_stage(
    doc: str, add_arguments: Callable[[argparse.ArgumentParser], None], run: Callable[[argparse.Namespace], None]
) -> None:
    """The command line of a stage module (`python -m src.fetch ...`): its flags, --params, run."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    add_arguments(parser)
    run_cli(lambda: run(parser.parse_args()))


def run_cli(main: Callable[[], None]) -> None:
    """Run a stage's main(); turn a UserError into a one-line message and a non-zero exit."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except FileNotFoundError as err:
        print(f"error: {err.filename}: file not found", file=sys.stderr)
        sys.exit(1)


class Params(dict):
    """One section of a params file; remembers where it came from, for error messages."""

    def __init__(self, values: dict[str, Any], where: str):
        super().__init__(values)
        self.where = where  # e.g. "params.yaml: train"


def load_params(section: str, path: str | Path = "params.yaml", known: Collection[str] = ()) -> Params:
    """Return one section of params.yaml (each stage reads only its own sections). With
    `known`, a key outside it is an error: a typo ('lr_rate: 1e-3') must not be ignored."""
    path = Path(path)
    try:
        params = yaml.safe_load(read_text(path))
    except yaml.YAMLError as err:
        raise UserError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    except RecursionError:
        raise UserError(f"{path}: invalid YAML (nested too deeply)") from None
    if not isinstance(params, dict) or not isinstance(params.get(section), dict):
        raise UserError(f"{path}: missing section '{section}'")
    unknown = sorted(set(params[section]) - set(known)) if known else []
    if unknown:
        raise UserError(f"{path}: {section}: unknown key '{unknown[0]}' (known: {', '.join(known)})")
    return Params(params[section], f"{path}: {section}")


def require(
    params: Params,
    key: str,
    kind: type | tuple[type, ...],
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
) -> Any:
    """Return params[key] after checking it exists, has the expected type and lies within
    the bounds given (a number must also be finite: no nan or inf)."""
    if key not in params:
        raise UserError(f"{params.where}: missing key '{key}'")
    value = params[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise UserError(f"{params.where}: key '{key}' must be {names}, got {value!r}")
    check_range(f"{params.where}: key '{key}'", value, at_least, above, at_most)
    return value


def check_range(
    what: str, value: Any, at_least: float | None = None, above: float | None = None, at_most: float | None = None
) -> None:
    """Raise a one-line UserError naming `what` unless value is a finite number within the bounds."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if not math.isfinite(value):
        raise UserError(f"{what} must be a finite number, got {value!r}")
    if at_least is not None and value < at_least:
        raise UserError(f"{what} must be at least {at_least}, got {value!r}")
    if above is not None and value <= above:
        raise UserError(f"{what} must be more than {above}, got {value!r}")
    if at_most is not None and value > at_most:
        raise UserError(f"{what} must be at most {at_most}, got {value!r}")


def read_jsonl(path: str | Path, check: Callable[[dict[str, Any], str], None] | None = None) -> list[dict[str, Any]]:
    """Read a JSONL file; a bad line raises UserError naming the file and line number.

    `check(record, "file:line")`, if given, validates each record where its line is known.
    """
    path = Path(path)
    records = []
    for line_no, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            json.dumps(record, ensure_ascii=False).encode("utf-8")  # fails on half a character ("\\ud800")
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{line_no}: invalid JSON ({err.msg})") from None
        except UnicodeEncodeError:
            raise UserError(f"{path}:{line_no}: invalid JSON (a \\u escape that is half a character)") from None
        except RecursionError:
            raise UserError(f"{path}:{line_no}: invalid JSON (nested too deeply)") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{line_no}: expected a JSON object")
        if check is not None:
            check(record, f"{path}:{line_no}")
        records.append(record)
    return records


def check_file(path: str | Path) -> None:
    """A UserError unless `path` is a regular file: not missing, not a folder, not a device
    such as /dev/zero (which never ends)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: {'not a regular file' if Path(path).exists() else 'file not found'}")


def read_text(path: str | Path) -> str:
    """A UTF-8 text file's contents; a missing or unreadable file, a folder or a byte that is not
    UTF-8 is a UserError naming the file (and the line of the bad byte)."""
    path = Path(path)
    check_file(path)
    try:
        data = path.read_bytes()
        return data.decode("utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError as err:
        line_no = data.count(b"\n", 0, err.start) + 1
        raise UserError(f"{path}:{line_no}: not UTF-8 text (byte 0x{data[err.start]:02x})") from None


def read_json_file(path: str | Path, kind: str) -> dict[str, Any]:
    """A JSON file this project wrote, whose "format" key says it is a `kind` file; anything
    else (not JSON, nested too deeply, another file) is a UserError naming it."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    except RecursionError:
        raise UserError(f"{path}: invalid JSON (nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != kind:
        raise UserError(f"{path}: not a {kind} file")
    return data


def record_checker(
    fields: dict[str, type], unique: tuple[str, ...] = (), not_blank: tuple[str, ...] = ()
) -> Callable[[dict[str, Any], str], None]:
    """A `check` for read_jsonl: every field present with its type, a known domain, no value of
    a `unique` key that an earlier line has (the error names both lines), no blank `not_blank` text."""
    first_seen: dict[tuple[str, Any], str] = {}  # (key, value) -> "file:line" where it first came

    def check(record: dict[str, Any], where: str) -> None:
        for key, kind in fields.items():
            if key not in record:
                raise UserError(f"{where}: missing key '{key}'")
            if not isinstance(record[key], kind):
                raise UserError(f"{where}: key '{key}' must be {kind.__name__}")
        if "domain" in fields and record["domain"] not in DOMAINS:
            raise UserError(f"{where}: unknown domain '{record['domain']}' (expected one of {', '.join(DOMAINS)})")
        for key in not_blank:
            if not record[key].strip():
                raise UserError(f"{where}: key '{key}' is empty")
        for key in unique:
            first = first_seen.setdefault((key, record[key]), where)
            if first != where:
                raise UserError(f"{where}: duplicate {key} {record[key]!r} (first at {first})")

    return check


ARTICLE_FIELDS = {"id": str, "title": str, "domain": str, "url": str, "aliases": list, "lead": str, "sections": list}
QA_FIELDS = {"id": str, "fact_id": str, "domain": str, "title": str, "section": str, "question": str, "answer": str}


def read_articles(path: str | Path) -> list[dict[str, Any]]:
    """Read and check article records (naming file:line on any problem)."""
    check_fields = record_checker(ARTICLE_FIELDS, unique=("id",))

    def check(article: dict[str, Any], where: str) -> None:
        check_fields(article, where)
        if not all(isinstance(alias, str) for alias in article["aliases"]):
            raise UserError(f"{where}: key 'aliases' must be a list of strings")
        for section in article["sections"]:
            if (
                not isinstance(section, dict)
                or not isinstance(section.get("heading"), str)
                or not isinstance(section.get("text"), str)
            ):
                raise UserError(f"{where}: each section needs string keys 'heading' and 'text'")

    return read_jsonl(path, check)


PASSAGE_FIELDS = {"id": str, "domain": str, "title": str, "section": str, "text": str}


def read_passages(path: str | Path) -> list[dict[str, Any]]:
    """Read and check passage records (data/processed/passages.jsonl)."""
    return read_jsonl(path, record_checker(PASSAGE_FIELDS, unique=("id",)))


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Read and check Q&A records (qa_pairs.jsonl and the splits): one line per id, so one
    pair can't have two fact_ids (and land in two splits)."""
    return read_jsonl(path, record_checker(QA_FIELDS, unique=("id",), not_blank=("question", "answer")))


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


UMASK = _read_umask()


def remove_stale_temps(path: Path) -> None:
    """Remove the temp files of `path` that a killed run left (atomic_path's names)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink()


_set_being_written: list[tuple[Path, Path]] | None = None  # (temp, output) pairs held back by atomic_outputs


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; rename it onto `path` only if the block succeeds.

    So a crash or a bad record half-way never leaves a half-written output behind. Inside
    atomic_outputs the rename waits for the rest of the set.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes it private (0600); outputs follow the umask
    os.close(fd)
    try:
        yield Path(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if _set_being_written is None:
        os.replace(tmp, path)
    else:
        _set_being_written.append((Path(tmp), path))


def journal_of(paths: tuple[str | Path, ...]) -> Path:
    """Where atomic_outputs lists the renames of a set: a hidden file beside its first output."""
    first = Path(paths[0])
    return first.with_name(f".{first.name}.journal")


@contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[None]:
    """Replace a stage's output files as one set: every file written in the block (through
    atomic_path: write_text, write_json, ...) stays under its temp name until the block ends;
    then a journal lists the renames, the renames happen, and the journal goes.

    So a kill at any instant leaves the old set, the new one, or a journal that the next run
    (recover_outputs) completes, never new pairs beside an old summary.
    """
    global _set_being_written
    recover_outputs(*paths)
    _set_being_written = held = []
    try:
        yield
        if {path for _, path in held} != {Path(p) for p in paths}:
            raise RuntimeError(f"wrote {sorted(str(p) for _, p in held)}, not the set declared: {sorted(map(str, paths))}")
    except BaseException:
        for tmp, _ in held:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        _set_being_written = None
    journal = journal_of(paths)
    write_text(journal, json.dumps([[os.path.relpath(p, journal.parent) for p in pair] for pair in held]))
    for tmp, path in held:
        os.replace(tmp, path)
    journal.unlink()


def recover_outputs(*paths: str | Path) -> None:
    """Settle what a killed atomic_outputs of this set left: with a journal, every new file
    was complete, so finish its renames; without one, remove the temp files (the old
    outputs were never touched). A stage calls this first, so a run that then fails still
    leaves a whole set. An output that is a folder is an error here, before any work: its
    rename would fail half-way through the set."""
    for path in paths:
        if Path(path).is_dir():
            raise UserError(f"{path}: is a folder, not an output file")
    journal = journal_of(paths)
    if journal.exists():
        try:
            renames = json.loads(read_text(journal))
            for tmp, path in renames:
                if (journal.parent / tmp).exists():
                    os.replace(journal.parent / tmp, journal.parent / path)
        except (ValueError, TypeError, OSError) as err:
            raise UserError(f"{journal}: cannot finish the interrupted write it lists ({err}): delete it and rerun") from None
        journal.unlink()
    for path in (journal, *paths):
        remove_stale_temps(Path(path))


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Write pretty JSON atomically (metrics, summaries)."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line, atomically."""
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def seed_everything(seed: int) -> None:
    """Seed Python's and (if loaded) torch's generators so runs repeat exactly."""
    random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device() -> str:
    """CUDA if present, else Apple's MPS, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@functools.cache  # asked at every training step: the answer does not change
def bf16_is_fast(device: str) -> bool:
    """Whether bfloat16 autocast pays on this device: CUDA with bf16, or a CPU with native bf16
    instructions (AVX-512 or ARM's). Elsewhere PyTorch emulates bf16 matrix multiplies, which
    on an AVX2-only CPU run about 80x slower than float32 (benchmark.py shows it)."""
    import torch

    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return device == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(device: str, enabled: bool = True) -> torch.autocast:
    """bfloat16 mixed precision where it helps (bf16_is_fast): training, and answering as the
    model was trained; a no-op elsewhere."""
    import torch

    device_type = "cuda" if device == "cuda" else "cpu"
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled and bf16_is_fast(device))


def article_id(domain: str, title: str) -> str:
    """Stable record id such as "astronomy/halley-s-comet"."""
    return f"{domain}/{slugify(title)}"


LEAD = "Lead"


def article_parts(article: dict[str, Any]) -> list[tuple[str, str]]:
    """An article as (heading, text) parts: the lead (heading LEAD), then every section."""
    return [(LEAD, article["lead"])] + [(s["heading"], s["text"]) for s in article["sections"]]


def slugify(text: str) -> str:
    """A name safe for files and ids: "Halley's Comet" -> "halley-s-comet"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


STOPWORDS = set(
    """a an the and or but of in on at to for from by with as is are was were be been being it its this that these those
they their them he she his her which who whom what when where why how than then there here also very more most less least
can could may might will would should do does did has have had not no so such into onto over under about after before
between during up down out off while because if each other some any all many much one two three four five six seven
eight nine ten about around only just even still often usually mainly mostly known called""".split()
)  # words that say little about what a text is about


def normalize_question(question: str) -> str:
    """How the model reads a question: lower case, words only, single spaces. People type
    "how does dew form", "How does Dew form?" and "HOW DOES DEW FORM??" for one question;
    the model should see one string, not learn each spelling apart.

    >>> normalize_question("  What's the Red Planet made of?? ")
    "what's the red planet made of"
    """
    return " ".join(re.sub(r"[^\w'-]+", " ", question.lower()).split())


def split_sentences(text: str) -> list[str]:
    """Split plain English text into sentences (at . ! ? followed by a capital or digit).

    >>> split_sentences("Mars is red. It has two moons.")
    ['Mars is red.', 'It has two moons.']
    """
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
