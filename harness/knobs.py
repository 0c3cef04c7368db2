"""The `OH_MATRIX_*` environment knobs that take a number, read in one place so that a bad
value is one input line (exit 2) in the inputs step, before anything is built or started,
and never a traceback at import."""

from __future__ import annotations

import os

from harness.errors import InputError

# name -> what it sets (for the error line and docs/exit-codes.md)
WHOLE_NUMBERS = {
    "OH_MATRIX_BOOT_SLOTS": "boots admitted at once",
    "OH_MATRIX_INSTALL_SLOTS": "venv installs at once in a cold build",
}


def whole_number(name: str) -> int | None:
    """The knob's value as a whole number of at least 1, or None when it is unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise InputError(f"{name}={raw!r}: expected a whole number of at least 1 ({WHOLE_NUMBERS[name]})")
    return int(raw)


def check_all() -> None:
    """Every numeric knob parsed: the inputs step of `run` and `images build` call this."""
    for name in WHOLE_NUMBERS:
        whole_number(name)
