"""Copy committed tables into the docs: every ``<!-- table: PATH -->`` ... ``<!-- /table -->`` block of a
docs/*.md page gets the Markdown table rows of PATH (relative to the repository root), so that a number in
the docs is the one in results/ and cannot go stale (``make figures`` runs this; tests/test_docs.py checks it).

    python tools/fill_doc_tables.py [--check]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- table: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)


def table_rows(path: Path) -> str:
    """The lines of a Markdown table file that are table rows (its title is left out)."""
    return "".join(line + "\n" for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("|"))


def filled(text: str, root: Path = ROOT) -> str:
    """``text`` with every table block holding the rows of its file (FileNotFoundError naming a missing one)."""
    def fill(match: re.Match) -> str:
        source = root / match["path"]
        if not source.is_file():
            raise FileNotFoundError(f"table block names {match['path']}, which does not exist: run make figures")
        return match.group(1) + table_rows(source) + match.group(4)

    return BLOCK.sub(fill, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which pages are stale (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        new = filled(text)
        if new != text:
            stale.append(page)
            if not args.check:
                page.write_text(new, encoding="utf-8")
    for page in stale:
        print(f"{page.relative_to(ROOT)}: {'stale' if args.check else 'filled'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
