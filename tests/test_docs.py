"""README.md and docs/*.md name only what exists: `sagkit` subcommands and their options (from the argparse
parser itself), notebooks (notebooks/), `make` targets (the Makefile) and linked files."""
import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from sagkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.S)
COMMAND = re.compile(r"(?:^|[\s(])(?:python -m |-m |\.venv/bin/)?sagkit ((?:[a-z][a-z_-]*)(?:\|[a-z][a-z_-]*)*)(.*)")
MAKE = re.compile(r"(?:^|&& |\$ )make ([a-z][a-z-]*)", re.M)  # a command: at the start of a code span or line
NOTEBOOK = re.compile(r"\b(\d\d_[A-Za-z0-9_]+)\.ipynb|notebooks/(\d\d_[A-Za-z0-9_]+)|^(\d\d_[a-z_]+)$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps no public accessor for its subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def code_snippets(text: str) -> list[str]:
    """The lines of every fenced block and every inline code span of a Markdown text."""
    snippets = []
    for block, inline in CODE.findall(text):
        snippets += block.splitlines() if block else [inline]
    return snippets


def problems(text: str, page: Path | None = None) -> list[str]:
    """What ``text`` (a Markdown page at ``page``) names that does not exist."""
    commands = _subparsers(build_parser())
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    found = []
    for snippet in code_snippets(text):
        line = snippet.split(" #")[0]
        for match in COMMAND.finditer(line):
            for name in match.group(1).split("|"):
                if name not in commands:
                    found.append(f"sagkit subcommand {name!r} (have {', '.join(sorted(commands))})")
                    continue
                parser, rest = commands[name], match.group(2).split()
                actions = _subparsers(parser)
                if actions and rest and re.fullmatch(r"[a-z|]+", rest[0]):
                    for action in rest[0].split("|"):
                        if action not in actions:
                            found.append(f"sagkit {name} action {action!r}")
                    parser = actions.get(rest[0].split("|")[0], parser)
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", " ".join(rest)):
                    if flag not in _options(parser):
                        found.append(f"option {flag} of sagkit {name}")
        for target in MAKE.findall(line):
            if target not in targets:
                found.append(f"make target {target!r} (have {', '.join(sorted(targets))})")
        for groups in NOTEBOOK.findall(snippet.strip()):
            stem = next(g for g in groups if g)
            if stem not in notebooks:
                found.append(f"notebook {stem!r}")
    for target in LINK.findall(text):
        path = target.split("#")[0]
        if not path or re.match(r"[a-z]+:", path):
            continue
        file = ((page.parent if page else ROOT) / path).resolve()
        if not file.exists():
            found.append(f"link to {path}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_names_only_what_exists(page):
    assert problems(page.read_text(encoding="utf-8"), page) == []


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("text, expected", [
    ("`python -m sagkit frobnicate RUN`", "sagkit subcommand 'frobnicate'"),
    ("```bash\npython -m sagkit train --profiel cpu\n```", "option --profiel of sagkit train"),
    ("`python -m sagkit results tabels`", "sagkit results action 'tabels'"),
    ("`python -m sagkit results tables --dataset cuhk01 --bogus 1`", "option --bogus of sagkit results"),
    ("run `make everything`", "make target 'everything'"),
    ("open `notebooks/07_missing.ipynb`", "notebook '07_missing'"),
    ("see [this](docs/nowhere.md)", "link to docs/nowhere.md"),
])
def test_the_check_finds_what_does_not_exist(text, expected):
    assert any(expected in found for found in problems(text)), problems(text)


def test_the_check_accepts_what_exists():
    text = ("`python -m sagkit results tables --dataset cuhk01 --set freeze_stages=3 --out x`, `make figures`, "
            "`notebooks/03_ablation.ipynb`, [the docs](docs/workbook.md#where-results-land), "
            "`sagkit eval runs/<name>`, `python -m sagkit results export|tables|compare`")
    assert problems(text, ROOT / "README.md") == []


def test_tables_in_the_docs_are_the_committed_ones():
    """Each ``<!-- table: PATH -->`` block of a docs page holds PATH's rows (tools/fill_doc_tables.py, run by
    ``make figures``), so a docs number cannot drift from results/."""
    spec = importlib.util.spec_from_file_location("fill_doc_tables", ROOT / "tools" / "fill_doc_tables.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    blocks = 0
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        blocks += len(tool.BLOCK.findall(text))
        assert tool.filled(text) == text, f"{page.name}: a table block differs from its file; run make figures"
    assert blocks >= 1
    stale = "<!-- table: results/tables/cuhk01/cpu/controls_summary.md -->\n| old |\n<!-- /table -->"
    assert tool.filled(stale) != stale


def test_the_readme_controls_numbers_are_the_committed_ones():
    """Every interval in the README's "Why does D4 win?" section is a cell of the committed controls table
    (minus signs typeset as U+2212 in the README)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Why does D4 win?", 1)[1].split("\n## ", 1)[0]
    committed = (ROOT / "results/tables/cuhk01/cpu/controls_summary.md").read_text(encoding="utf-8")
    found = re.findall(r"[−+-]?\d+\.\d\d(?: ± \d+\.\d\d)? \[[−+-]?\d+\.\d\d, [−+-]?\d+\.\d\d\]", section)
    assert len(found) >= 8
    for cell in found:
        assert cell.replace("−", "-") in committed, f"README cell {cell!r} is not in the committed controls table"
