"""Bad input, given the way a hostile user would: every case runs a real command in a folder of
its own and must end with exactly one line `error: <file>[:<line>]: ...` on stderr (naming the
file, line or key), a non-zero exit, and every file in the folder, its inputs and the outputs of
an earlier good run, byte for byte as it was. Then fuzzing of the record readers and of
Tokenizer.load: random bytes and random JSON give a clean error or valid records, nothing else."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ENV, REPO, make_world
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src import calibrate, qa, train, utils
from src.model import MiniTransformer, ModelConfig
from src.tokenizer import SPLIT_PATTERN, Tokenizer

BAD_WEIGHTS = f"calibration.json: keys 'weights' ({len(calibrate.FEATURES)} numbers)"  # one weight per feature
RUN_ENV = {**ENV, "PYTHONPATH": str(REPO)}  # this checkout's src/, from whatever folder the command runs in

ASK = ["src/ask.py", "What does the tiger eat?", "--checkpoint", "model.pt", "--params", "params.yaml"]
ASK_STDIN = ["src/ask.py", "--checkpoint", "model.pt", "--params", "params.yaml"]
EVAL = ["src/evaluate.py", "--params", "params.yaml", "--checkpoint", "model.pt", "--test", "test.jsonl"]
EVAL += ["--train", "train.jsonl", "--articles", "articles.jsonl", "--natural", "natural"]
EVAL += ["--out-of-scope", "out_of_scope.jsonl", "--calibration", "calibration.json", "--metrics", "old/eval.json"]
EVAL += ["--details", "old/eval_details.json", "--answers-dir", "old", "--plots", "old"]
TRAIN = ["src/train.py", "--params", "params.yaml", "--tokenizer", "tokenizer.json", "--passages", "passages.jsonl"]
TRAIN += ["--train", "train.jsonl", "--val", "val.jsonl", "--checkpoint", "model.pt", "--metrics", "old/train.json"]
TRAIN += ["--plot", "old/train_loss.csv"]
SPLIT = ["src/split.py", "--params", "params.yaml", "--input", "qa.jsonl", "--output-dir", "splits"]
GENERATE = ["src/generate.py", "--params", "params.yaml", "--input", "articles.jsonl", "--output", "old/qa_pairs.jsonl"]
FETCH = ["src/fetch.py", "--params", "params.yaml", "--source", "wikipedia", "--output", "old/articles.jsonl"]

Setup = Callable[[Path], None]


# ---------------------------------------------------------------- ways to spoil a file


def write(name: str, data: str | bytes) -> Setup:
    def setup(folder: Path) -> None:
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))

    return setup


def calibration_file(**fields) -> Setup:
    """A calibration.json made for the folder's model.pt and params.yaml, with these fields."""

    def setup(folder: Path) -> None:
        max_new_tokens, _, recital_weight = qa.answer_settings(folder / "params.yaml")
        made = calibrate.made_for(folder / "model.pt", max_new_tokens, recital_weight)
        data = {"format": calibrate.FORMAT, **made, "weights": [0.0] * len(calibrate.FEATURES), "bias": 0.0, **fields}
        (folder / "calibration.json").write_text(json.dumps(data))

    return setup


def cut(name: str, size: int) -> Setup:
    """Keep only the first `size` bytes, as `head -c size` would."""
    return lambda folder: (folder / name).write_bytes((folder / name).read_bytes()[:size])


def folder_instead(name: str) -> Setup:
    def setup(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()

    return setup


def edit_checkpoint(change: Callable[[dict], object]) -> Setup:
    """Load model.pt, let `change` edit the dict in place (or return what to save instead), save it."""

    def setup(folder: Path) -> None:
        state = torch.load(folder / "model.pt", weights_only=True)
        replacement = change(state)
        torch.save(state if replacement is None else replacement, folder / "model.pt")

    return setup


def edit_records(name: str, change: Callable[[list[dict]], None]) -> Setup:
    def setup(folder: Path) -> None:
        records = [json.loads(line) for line in (folder / name).read_text(encoding="utf-8").splitlines()]
        change(records)
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    return setup


def with_line(name: str, line: bytes, at: int = 2) -> Setup:
    """Put a raw line into a JSONL file, as its line number `at`."""

    def setup(folder: Path) -> None:
        lines = (folder / name).read_bytes().splitlines(keepends=True)
        (folder / name).write_bytes(b"".join(lines[: at - 1] + [line + b"\n"] + lines[at - 1 :]))

    return setup


class RunsCode:
    """Unpickling it would run a shell command (that leaves a file behind)."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def old_version(state: dict) -> None:
    """A checkpoint as the code before format version 2 wrote it: the tokenizer's path, no format."""
    del state["format"], state["version"]
    state["tokenizer"] = "tokenizer.json"


def other_tokenizer(state: dict) -> None:
    """A valid tokenizer, but not the model's: no merges, so fewer ids than the model has rows."""
    saved = json.loads(state["tokenizer"])
    specials = {token: 256 + k for k, token in enumerate(saved["special_tokens"])}
    state["tokenizer"] = json.dumps({**saved, "merges": [], "special_tokens": specials})


def set_dict(key: str, value: object) -> Callable[[dict], None]:
    return lambda d: d.__setitem__(key, value)


def set_config(key: str, value: object) -> Callable[[dict], None]:
    return lambda state: state["config"].__setitem__(key, value)


def set_pair(index: int, key: str, value: object) -> Callable[[list[dict]], None]:
    return lambda records: records[index].__setitem__(key, value)


def set_param(section: str, key: str, value: object) -> Setup:
    """Set one value of the folder's params.yaml."""

    def setup(folder: Path) -> None:
        params = yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8"))
        params[section][key] = value
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    return setup


NO_CHANGE: Setup = lambda folder: None  # noqa: E731

# (name, command, setup, fragments of the error line, stdin)
CASES = [
    # a checkpoint: ask.py and evaluate.py
    # the recitations beside a checkpoint (src/recite.py): read by ask.py, evaluate.py and explain.py
    ("recit_not_json", ASK, write("recitations.json", '{"format": '), ["recitations.json:1: invalid JSON"], None),
    ("recit_deep", ASK, write("recitations.json", "[" * 100_000), ["recitations.json: invalid JSON (nested"], None),
    ("recit_not_utf8", ASK, write("recitations.json", b'{"format": "\xff"}'), ["recitations.json:1: not UTF-8"], None),
    ("recit_foreign", ASK, write("recitations.json", '{"a": 1}'), ["recitations.json: not a minillm-recitations"], None),
    ("recit_folder", ASK, lambda folder: (folder / "recitations.json").mkdir(), ["recitations.json: not a regular file"], None),
    # the calibration beside a checkpoint (src/calibrate.py): read by ask.py, evaluate.py and explain.py
    ("calib_not_json", ASK, write("calibration.json", "{"), ["calibration.json:1: invalid JSON"], None),
    ("calib_foreign", ASK, write("calibration.json", '{"format": "x"}'), ["calibration.json: not a minillm-calibration"], None),
    ("calib_weights", ASK, calibration_file(weights=[1.0, "2"]), [BAD_WEIGHTS], None),
    ("calib_infinite", ASK, calibration_file(bias=float("inf")), [BAD_WEIGHTS], None),
    ("ckpt_cut_short", ASK, cut("model.pt", 20000), ["model.pt: not a PyTorch checkpoint"], None),
    ("ckpt_text_file", ASK, write("model.pt", "hello\n"), ["model.pt: not a PyTorch checkpoint"], None),
    ("ckpt_empty", ASK, write("model.pt", b""), ["model.pt: not a PyTorch checkpoint"], None),
    ("ckpt_folder", ASK, folder_instead("model.pt"), ["model.pt: not a regular file"], None),
    ("ckpt_missing", ASK + ["--checkpoint", "nothing.pt"], NO_CHANGE, ["nothing.pt: file not found"], None),
    ("ckpt_runs_code", ASK, edit_checkpoint(lambda s: {"x": RunsCode()}), ["model.pt: refused"], None),
    ("ckpt_a_list", ASK, edit_checkpoint(lambda s: [1, 2]), ["model.pt: not a minillm-checkpoint"], None),
    ("ckpt_old_version", ASK, edit_checkpoint(old_version), ["model.pt: not a minillm-checkpoint"], None),
    ("ckpt_new_version", ASK, edit_checkpoint(set_dict("version", 99)), ["model.pt: checkpoint version 99"], None),
    ("ckpt_no_config", ASK, edit_checkpoint(lambda s: s.__delitem__("config")), ["model.pt: missing key 'config'"], None),
    ("ckpt_config_list", ASK, edit_checkpoint(set_dict("config", [1])), ["model.pt: key 'config' must be dict"], None),
    ("ckpt_unknown_key", ASK, edit_checkpoint(set_config("n_ctx", 8)), ["model.pt: config: unknown key 'n_ctx'"], None),
    ("ckpt_no_key", ASK, edit_checkpoint(lambda s: s["config"].__delitem__("emb_dim")), ["config: missing key 'emb_dim'"], None),
    ("ckpt_str_size", ASK, edit_checkpoint(set_config("emb_dim", "64")), ["config: key 'emb_dim' must be int"], None),
    ("ckpt_huge_seq", ASK, edit_checkpoint(set_config("max_seq_len", 10**9)), ["config: key 'max_seq_len'"], None),
    ("ckpt_zero_heads", ASK, edit_checkpoint(set_config("num_heads", 0)), ["model.pt: config: num_heads"], None),
    ("ckpt_1e6_layers", ASK, edit_checkpoint(set_config("num_layers", 10**6)), ["model.pt:", "layers"], None),
    ("ckpt_wrong_shape", ASK, edit_checkpoint(set_config("emb_dim", 16)), ["model.pt: weight 'tok_emb.weight'"], None),
    ("ckpt_lost_weight", ASK, edit_checkpoint(lambda s: s["model"].__delitem__("norm.bias")), ["'norm.bias' is missing"], None),
    ("ckpt_extra_weight", ASK, edit_checkpoint(lambda s: s["model"].update(x=torch.ones(1))), ["'x' is not in"], None),
    (
        "ckpt_cut_tokenizer",
        ASK,
        edit_checkpoint(lambda s: s.update(tokenizer=s["tokenizer"][:600])),
        ["model.pt: tokenizer"],
        None,
    ),
    ("ckpt_tokenizer_vocab", ASK, edit_checkpoint(other_tokenizer), ["model.pt: its tokenizer has 259 ids"], None),
    ("ckpt_no_sources", ASK, edit_checkpoint(set_dict("sources", [])), ["model.pt: key 'sources'"], None),
    ("eval_ckpt_cut_short", EVAL, cut("model.pt", 20000), ["model.pt: not a PyTorch checkpoint"], None),
    ("eval_ckpt_runs_code", EVAL, edit_checkpoint(lambda s: {"x": RunsCode()}), ["model.pt: refused"], None),
    ("eval_ckpt_unknown_key", EVAL, edit_checkpoint(set_config("n_ctx", 8)), ["model.pt: config: unknown key"], None),
    # ask.py's flags, its question and its stdin
    ("ask_top_k_0", ASK + ["--top-k", "0"], NO_CHANGE, ["--top-k must be at least 1"], None),
    ("ask_top_p_0", ASK + ["--top-p", "0"], NO_CHANGE, ["--top-p must be more than 0"], None),
    ("ask_temperature_nan", ASK + ["--temperature", "nan"], NO_CHANGE, ["--temperature must be a finite"], None),
    ("ask_max_new_tokens", ASK + ["--max-new-tokens", "-5"], NO_CHANGE, ["--max-new-tokens must be at least 1"], None),
    ("ask_empty_question", [*ASK_STDIN, ""], NO_CHANGE, ["the question is empty"], b"What is Mars?\n"),
    ("ask_bad_utf8_arg", [*ASK_STDIN, b"what \xff\xfe?"], NO_CHANGE, ["the question: not valid UTF-8"], None),
    ("ask_bad_utf8_stdin", ASK_STDIN, NO_CHANGE, ["<stdin>:2: not valid UTF-8"], b"What is Mars?\nwhat \xff?\n"),
    # a tokenizer file: train.py
    ("tok_cut_short", TRAIN, cut("tokenizer.json", 600), ["tokenizer.json: invalid tokenizer file"], None),
    ("tok_not_utf8", TRAIN, write("tokenizer.json", b'{"format": "\xff"}'), ["tokenizer.json: invalid tokenizer"], None),
    ("tok_foreign", TRAIN, write("tokenizer.json", '{"model": {"type": "BPE"}}'), ["tokenizer.json: invalid"], None),
    ("tok_deep", TRAIN, write("tokenizer.json", "[" * 100_000), ["tokenizer.json: invalid tokenizer file"], None),
    ("tok_folder", TRAIN, folder_instead("tokenizer.json"), ["tokenizer.json: not a regular file"], None),
    # Q&A records: split.py
    ("pairs_not_utf8", SPLIT, with_line("qa.jsonl", b'{"id": "\xe9"}'), ["qa.jsonl:2: not UTF-8 text"], None),
    ("pairs_deep", SPLIT, with_line("qa.jsonl", b"[" * 100_000, at=3), ["qa.jsonl:3: invalid JSON"], None),
    ("pairs_not_json", SPLIT, with_line("qa.jsonl", b'{"id": '), ["qa.jsonl:2: invalid JSON"], None),
    ("pairs_a_list", SPLIT, with_line("qa.jsonl", b"[1, 2]"), ["qa.jsonl:2: expected a JSON object"], None),
    ("pairs_half_char", SPLIT, with_line("qa.jsonl", rb'{"id": "\ud800"}'), ["qa.jsonl:2: invalid JSON"], None),
    ("pairs_no_key", SPLIT, edit_records("qa.jsonl", lambda r: r[1].pop("fact_id")), ["qa.jsonl:2: missing key"], None),
    ("pairs_wrong_type", SPLIT, edit_records("qa.jsonl", set_pair(2, "answer", 7)), ["qa.jsonl:3: key 'answer'"], None),
    ("pairs_domain", SPLIT, edit_records("qa.jsonl", set_pair(0, "domain", "music")), ["qa.jsonl:1: unknown"], None),
    ("pairs_blank_question", SPLIT, edit_records("qa.jsonl", set_pair(4, "question", " ")), ["qa.jsonl:5: key 'question'"], None),
    (
        "pairs_empty_answer",
        SPLIT,
        edit_records("qa.jsonl", set_pair(5, "answer", "")),
        ["qa.jsonl:6: key 'answer' is empty"],
        None,
    ),
    ("pairs_same_id", SPLIT, edit_records("qa.jsonl", lambda r: r[7].update(id=r[2]["id"])), ["qa.jsonl:8:", "qa.jsonl:3"], None),
    ("pairs_empty_file", SPLIT, write("qa.jsonl", ""), ["qa.jsonl: no Q&A pairs"], None),
    ("pairs_blank_lines", SPLIT, write("qa.jsonl", "\n  \n"), ["qa.jsonl: no Q&A pairs"], None),
    ("pairs_too_few_facts", SPLIT, edit_records("qa.jsonl", lambda r: r.__delitem__(slice(4, None))), ["cannot split"], None),
    ("pairs_folder", SPLIT, folder_instead("qa.jsonl"), ["qa.jsonl: not a regular file"], None),
    ("split_into_a_full_folder", SPLIT[:-1] + ["old"], NO_CHANGE, ["old: holds", "--output-dir"], None),
    ("params_not_utf8", SPLIT, write("params.yaml", b"split:\n  seed: 1 # \xff\n"), ["params.yaml:2: not UTF-8"], None),
    ("params_deep", SPLIT, write("params.yaml", "[" * 100_000), ["params.yaml: invalid YAML"], None),
    # article records: generate.py
    (
        "articles_same_id",
        GENERATE,
        edit_records("articles.jsonl", lambda r: r[3].update(id=r[0]["id"])),
        ["articles.jsonl:4: duplicate id", "articles.jsonl:1)"],
        None,
    ),
    ("articles_bad_alias", GENERATE, edit_records("articles.jsonl", set_pair(1, "aliases", [7])), [":2: key 'aliases'"], None),
    ("articles_not_utf8", GENERATE, with_line("articles.jsonl", b"\xc3\x28", at=4), ["articles.jsonl:4: not UTF-8"], None),
    # params checked before any topic is read or any request made: fetch.py
    ("fetch_workers_0", FETCH, set_param("fetch", "workers", 0), ["params.yaml: fetch: key 'workers' must be at least 1"], None),
    ("fetch_workers_4", FETCH, set_param("fetch", "workers", 4), ["params.yaml: fetch: key 'workers' must be at most 3"], None),
    # the switches of the lessons (experiments/LESSONS.md): train.py's params, and a checkpoint's record of them
    ("params_positions", TRAIN, set_param("model", "positions", "absolute"), ["params.yaml: model: positions must be"], None),
    ("params_mask_prompt", TRAIN, set_param("train", "mask_prompt", "no"), ["train: key 'mask_prompt' must be bool"], None),
    ("params_recitation", TRAIN, set_param("train", "recitation", 1), ["train: key 'recitation' must be bool"], None),
    ("ckpt_positions", ASK, edit_checkpoint(set_config("positions", "alibi")), ["model.pt: config: positions must be"], None),
    ("ckpt_positions_swap", ASK, edit_checkpoint(set_config("positions", "learned")), ["'pos_emb.weight' is missing"], None),
    ("ckpt_recitation", ASK, edit_checkpoint(set_config("recitation", "yes")), ["config: key 'recitation' must be bool"], None),
    # a typo in any section is an error, not a silently ignored key
    ("params_typo_train", TRAIN, set_param("train", "lr_rate", 0.001), ["params.yaml: train: unknown key 'lr_rate'"], None),
    ("params_typo_model", TRAIN, set_param("model", "layers", 2), ["params.yaml: model: unknown key 'layers'"], None),
    ("params_typo_eval", ASK, set_param("eval", "min_conf", 0.5), ["params.yaml: eval: unknown key 'min_conf'"], None),
    ("params_typo_eval_stage", EVAL, set_param("eval", "topk", 5), ["params.yaml: eval: unknown key 'topk'"], None),
    ("params_typo_split", SPLIT, set_param("split", "seeds", 1), ["params.yaml: split: unknown key 'seeds'"], None),
    ("params_typo_generate", GENERATE, set_param("generate", "sed", 1), ["params.yaml: generate: unknown key 'sed'"], None),
    ("params_typo_fetch", FETCH, set_param("fetch", "time_out", 5), ["params.yaml: fetch: unknown key 'time_out'"], None),
    (
        "params_recital_weight",
        ASK,
        set_param("eval", "recital_weight", -1),
        ["eval: key 'recital_weight' must be at least 0"],
        None,
    ),
]


# ---------------------------------------------------------------- running them


def write_checkpoint(world: dict[str, Path], path: Path) -> None:
    """A checkpoint as train.py writes it (its own save_checkpoint), of an untrained tiny model:
    the errors come before any answer, so training it would only cost time."""
    tokenizer = Tokenizer.load(world["tokenizer"])
    config = ModelConfig(vocab_size=tokenizer.vocab_size, max_seq_len=64, emb_dim=32, num_layers=1, num_heads=2)
    passages = utils.read_passages(world["passages"])
    args = argparse.Namespace(tokenizer=world["tokenizer"], checkpoint=path)
    model = MiniTransformer(config)
    train.save_checkpoint(model, config, tokenizer.dumps(), args, step=1, val_loss=1.0, passages=passages)


def many_pairs() -> list[dict]:
    """Twenty facts in each domain, two questions each: enough to split 80/10/10, stratified by domain."""
    return [
        {
            "id": f"{domain}-{fact}-{question}",
            "fact_id": f"{domain}-{fact}",
            "domain": domain,
            "title": f"Topic {fact}",
            "section": "Lead",
            "question": f"Question {question} about topic {fact}?",
            "answer": f"Topic {fact} is about {domain}. It has two sentences.",
        }
        for domain in utils.DOMAINS
        for fact in range(20)
        for question in range(2)
    ]


def make_template(root: Path) -> Path:
    """The folder every case starts from: the tiny world, a checkpoint, Q&A pairs to split, and in
    old/ and splits/ the outputs of an earlier good run, which no failure may touch."""
    world = make_world(root)
    write_checkpoint(world, root / "model.pt")
    utils.write_jsonl(root / "qa.jsonl", many_pairs())
    for name in ("eval.json", "eval_details.json", "train.json", "train_loss.csv", "qa_pairs.jsonl", "passages.jsonl"):
        utils.write_text(root / "old" / name, f"old {name}\n")
    for name in ("train", "val", "test"):
        utils.write_text(root / "splits" / f"{name}.jsonl", f"old {name}\n")
    return root


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None), by path: what a failure must leave as it was."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def run_case(folder: Path, command: list, stdin: bytes | None) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(REPO / command[0]), *command[1:]]
    return subprocess.run(argv, cwd=folder, input=stdin or b"", capture_output=True, env=RUN_ENV, timeout=120)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict, dict]]:
    """Every case run once, a few at a time: name -> (result, files before, files after)."""
    template = make_template(tmp_path_factory.mktemp("template"))
    folders, before = {}, {}
    for name, _, setup, _, _ in CASES:
        folders[name] = tmp_path_factory.mktemp(name)
        shutil.copytree(template, folders[name], dirs_exist_ok=True)
        setup(folders[name])
        before[name] = snapshot(folders[name])
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(folders, pool.map(lambda case: run_case(folders[case[0]], case[1], case[4]), CASES)))
    return {name: (results[name], before[name], snapshot(folders[name])) for name in folders}


@pytest.mark.parametrize("name, fragments", [(c[0], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_error_and_leaves_every_file_as_it_was(outcomes, name, fragments):
    result, before, after = outcomes[name]
    stderr = result.stderr.decode("utf-8", errors="replace")
    assert result.returncode != 0, result.stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert after == before  # inputs and old outputs byte for byte; no new file (nor a "pwned" one)


def test_the_good_case_of_each_command_works_from_another_folder(tmp_path):
    """The same commands on the unspoiled folder succeed, so each failure above is its own spoiling.
    A copied checkpoint answers with no tokenizer file beside it; split swaps in a whole new
    folder; what killed runs left behind is cleared; outputs follow the umask, not 0600."""
    folder = make_template(tmp_path / "good")
    (folder / "tokenizer.json").unlink()
    leftovers = [folder / ".splits.new.tmp" / "train.jsonl", folder / ".splits.old.tmp" / "val.jsonl"]
    leftovers.append(folder / "old" / ".qa_pairs.jsonl.x1y2.tmp")
    for path in leftovers:
        utils.write_text(path, "from a killed run\n")
    for command in (ASK, SPLIT, GENERATE):
        result = run_case(folder, command, None)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.strip()  # ask.py's reply, split's and generate's counts
    assert sorted(p.name for p in (folder / "splits").iterdir()) == ["test.jsonl", "train.jsonl", "val.jsonl"]
    assert (folder / "splits" / "train.jsonl").read_bytes() != b"old train\n"
    assert not any(path.exists() for path in leftovers) and not list(folder.rglob("*.tmp"))
    assert (folder / "splits").stat().st_mode & 0o777 == 0o777 & ~utils.UMASK
    for path in [folder / "splits" / "val.jsonl", folder / "old" / "qa_pairs.jsonl"]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~utils.UMASK


# ---------------------------------------------------------------- fuzzing

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
SHORT_TEXT = st.sampled_from(["Mars", "Why?", "It is red.", "", " ", "\ud800"]) | st.text(max_size=4)
FEW_IDS = st.sampled_from(["a", "b", "c"])  # so that ids repeat
DOMAIN = st.sampled_from([*utils.DOMAINS[:2], "music"])
PAIR = st.fixed_dictionaries(
    {key: FEW_IDS if key.endswith("id") else DOMAIN if key == "domain" else SHORT_TEXT for key in utils.QA_FIELDS}
)
SECTIONS = st.lists(st.fixed_dictionaries({"heading": SHORT_TEXT, "text": SHORT_TEXT}) | JSON_VALUES, max_size=2)
ARTICLE = st.fixed_dictionaries(
    {"id": FEW_IDS, "title": SHORT_TEXT, "domain": DOMAIN, "url": SHORT_TEXT, "lead": SHORT_TEXT}
    | {"aliases": st.lists(SHORT_TEXT | JSON_VALUES, max_size=2), "sections": SECTIONS}
)


def spoil(record: dict, key: str | None, value: object) -> dict:
    """The record with one key dropped (value None), set to `value`, or (key None) as it was."""
    if key is None:
        return record
    return {k: v for k, v in record.items() if k != key} if value is None else {**record, key: value}


ANYTHING = JSON_VALUES.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=40)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def lines_of(records: st.SearchStrategy, fields: dict[str, type]) -> st.SearchStrategy:
    """JSONL lines: records as they should be, records with one key dropped or set to anything, and anything."""
    spoiled = st.tuples(records, st.none() | st.sampled_from(sorted(fields)), JSON_VALUES).map(lambda t: spoil(*t))
    return spoiled.map(lambda record: json.dumps(record).encode()) | ANYTHING


@pytest.mark.parametrize(
    "read, fields, lines",
    [(utils.read_pairs, utils.QA_FIELDS, lines_of(PAIR, utils.QA_FIELDS))]
    + [(utils.read_articles, utils.ARTICLE_FIELDS, lines_of(ARTICLE, utils.ARTICLE_FIELDS))],
    ids=["pairs", "articles"],
)
@FUZZ
@given(data=st.data())
def test_fuzzed_record_files_give_checked_records_or_a_clean_error(tmp_path, read, fields, lines, data):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"\n".join(data.draw(st.lists(lines, max_size=4))))
    try:
        records = read(path)
    except utils.UserError as err:
        assert str(err).startswith(f"{path}") and "\n" not in str(err)
        return
    for record in records:
        assert all(isinstance(record[key], kind) for key, kind in fields.items())
        assert record["domain"] in utils.DOMAINS
        json.dumps(record, ensure_ascii=False).encode("utf-8")  # all of it text that can be written out
    assert len({r["id"] for r in records}) == len(records)
    if read is utils.read_pairs:
        assert all(r["question"].strip() and r["answer"].strip() for r in records)


def saved_tokenizer() -> bytes:
    """A real tokenizer file (Tokenizer.save): what the mutations below start from."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        Tokenizer.train(["aaab aaab aaab", "the cat sat on the mat"], 266, ["<|endoftext|>", "<|question|>"]).save(path)
        return path.read_bytes()


SAVED = saved_tokenizer()
SAVED_JSON = json.loads(SAVED)


def with_field(key: str, value: object) -> bytes:
    return json.dumps({**SAVED_JSON, key: value}).encode()


def with_merge(index: int, value: object) -> bytes:
    merges = list(SAVED_JSON["merges"])
    merges[index % len(merges)] = value
    return with_field("merges", merges)


TOKENIZER_FILES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.integers(0, len(SAVED)).map(lambda n: SAVED[:n]),  # cut short
    st.tuples(st.integers(0, len(SAVED) - 1), st.integers(0, 255)).map(
        lambda t: SAVED[: t[0]] + bytes([t[1]]) + SAVED[t[0] + 1 :]
    ),
    st.tuples(st.sampled_from(sorted(SAVED_JSON)), JSON_VALUES).map(lambda t: with_field(*t)),
    st.tuples(st.integers(0, 20), JSON_VALUES | st.lists(st.integers(-2, 300), max_size=3)).map(lambda t: with_merge(*t)),
)


@FUZZ
@given(data=TOKENIZER_FILES)
def test_fuzzed_tokenizer_files_load_or_raise_one_clean_error(tmp_path, data):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(data)
    try:
        tok = Tokenizer.load(path)
    except ValueError as err:
        assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
        return
    text = "the cat sat <|endoftext|> on ünïcödé 🙂"
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert isinstance(tok.decode(ids + list(tok.special_tokens.values())), str)
    if tok.pattern == SPLIT_PATTERN:  # every text is cut into chunks that add up to it: back exactly
        assert tok.decode(ids) == text
