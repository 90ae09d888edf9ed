"""Helpers of the packaging tests: a clean copy of the repository, fresh virtualenvs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

REPO_ROOT = Path(__file__).resolve().parents[2]


def clean_copy(destination: Path) -> Path:
    """The files a fresh clone has (tracked, plus new files not ignored) copied to
    ``destination``: what a user checks out, with this worktree's changes."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO_ROOT / os.fsdecode(name)
        if source.is_file():
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def git_commit_all(folder: Path) -> None:
    """Makes ``folder`` a git repository with one commit (what ``dlt init --location`` reads)."""
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=test@example.com", "-c", "user.name=test", "commit", "-qm", "c"],
    ):
        subprocess.run(command, cwd=folder, check=True, capture_output=True)


def clean_env(**extra: str) -> Dict[str, str]:
    """This environment without the checkout's venv, Close, destination or dbt settings."""
    prefixes = ("SOURCES__", "DESTINATION__", "CLOSE_", "DBT_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(RUNTIME__DLTHUB_TELEMETRY="false", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(command: List[str], cwd: Path, env: Dict[str, str], timeout: float = 900) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}\n{result.stdout[-4000:]}\n"
        f"{result.stderr[-4000:]}"
    )
    return result.stdout


def make_venv(folder: Path) -> Path:
    """A fresh virtualenv (no system site-packages) at ``folder``; returns its bin dir."""
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=300)
    return folder / "bin"
