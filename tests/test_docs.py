"""Every Python block in the docs and the README runs, so the docs cannot rot.

A block that needs the network or a GPU is preceded by `<!-- skip: reason -->` and skipped with that reason. The blocks
of one file run in order in one namespace, in a temporary working directory.
"""

import re
from pathlib import Path

import pytest


ROOT = Path(__file__).parent.parent
BLOCK = re.compile(r"(<!-- skip: (?P<reason>[^>]*?) -->\s*)?```python\n(?P<code>.*?)```", re.DOTALL)
DOCUMENTS = sorted(path.relative_to(ROOT).as_posix() for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")])


def python_blocks(text: str) -> list[tuple[str, str | None]]:
    return [(match["code"], match["reason"]) for match in BLOCK.finditer(text)]


def test_skip_markers_are_found():
    blocks = python_blocks("<!-- skip: needs a GPU -->\n```python\nx = 1\n```\n```python\ny = 2\n```")
    assert blocks == [("x = 1\n", "needs a GPU"), ("y = 2\n", None)]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_code_runs(document, tmp_path, monkeypatch, capsys):
    blocks = python_blocks((ROOT / document).read_text(encoding="utf-8"))
    runnable = [code for code, reason in blocks if reason is None]
    if not runnable:
        pytest.skip(f"{document} has no runnable Python block")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for index, code in enumerate(runnable):
        exec(compile(code, f"{document}[block {index}]", "exec"), namespace)
