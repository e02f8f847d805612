"""The repository stays clean and its README true to the Makefile."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
@pytest.mark.parametrize("name", ["celerybeat-schedule", "celerybeat-schedule.dat", "celerybeat-schedule.db"])
def test_celery_beats_schedule_files_are_ignored(name):
    # celery beat writes them where it runs (the repository root, under make beat).
    result = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False, timeout=30)
    assert result.returncode == 0


def test_the_readmes_make_lint_line_names_every_tool_the_target_runs():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    tools = set(re.findall(r"\$\(BIN\)/(ruff check|ruff format|mypy)", recipe.group(1)))
    line = re.search(r"^make lint +# (.*)$", (ROOT / "README.md").read_text(), re.MULTILINE)
    assert line is not None
    assert tools == {"ruff check", "ruff format", "mypy"}
    assert all(tool in line.group(1) for tool in tools)
