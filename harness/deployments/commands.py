"""The read-only commands a user's `docker run` line may run in a `$(...)` (`id -u`, `whoami`,
`date +FORMAT`: shell.READ_ONLY says which), run on this machine for the reader, which runs
nothing itself (docs/architecture.md, "Pure parts"): the front doors hand `run` to the
matrix reader (workflow.py on the controller, plugin.py on each worker).
"""

from __future__ import annotations

import subprocess


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """(exit status, output, errors) of `argv` with exactly `env` as its environment (compose.Runner)."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, env=env, check=False)
    return done.returncode, done.stdout, done.stderr
