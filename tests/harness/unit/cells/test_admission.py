"""Admission control for boots: how many the machine admits, from what boots measured here,
and that a slot is really exclusive (machine-wide lock files)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from harness.cells import admission
from harness.host import hostload


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OH_MATRIX_CACHE", str(tmp_path))
    return tmp_path


def test_one_boot_at_a_time_until_a_boot_was_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostload, "cores", lambda: 8)
    n, why = admission.slots()
    assert n == 1 and "no boot measured" in why


def test_slots_follow_what_boots_used_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostload, "cores", lambda: 2)
    monkeypatch.setattr(hostload, "memory_available", lambda: 24 * 10**9)
    for cores in (1.1, 0.9, 1.0):
        admission.record("v1", cores, 1.5e9)
    assert admission.slots()[0] == 1  # 2 cores x 0.9 / 1.0 per boot
    monkeypatch.setattr(hostload, "cores", lambda: 8)
    n, why = admission.slots()
    assert n == 7 and "1.00 cores per boot" in why
    monkeypatch.setattr(hostload, "memory_available", lambda: 4 * 10**9)
    assert admission.slots()[0] == 2  # memory bounds it: 4 GB x 0.9 / 1.5 GB


def test_a_slot_is_exclusive_and_alone_takes_them_all() -> None:
    order: list[str] = []

    def hold(name: str, n: int, alone: bool, seconds: float) -> None:
        with admission.slot(n, alone):
            order.append(f"{name} in")
            time.sleep(seconds)
            order.append(f"{name} out")

    a = threading.Thread(target=hold, args=("a", 2, False, 0.6))
    a.start()
    time.sleep(0.1)
    b = threading.Thread(target=hold, args=("b", 2, False, 0.1))  # the second slot is free
    b.start()
    b.join()
    assert order[:3] == ["a in", "b in", "b out"]
    c = threading.Thread(target=hold, args=("c", 2, True, 0.1))  # alone: waits for a
    c.start()
    c.join()
    a.join()
    assert order.index("c in") > order.index("a out")


def test_the_owner_may_set_the_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import InputError

    monkeypatch.setenv("OH_MATRIX_BOOT_SLOTS", "2")
    assert admission.slots() == (2, "set by OH_MATRIX_BOOT_SLOTS=2")
    monkeypatch.setenv("OH_MATRIX_BOOT_SLOTS", "many")
    with pytest.raises(InputError, match="OH_MATRIX_BOOT_SLOTS='many'"):
        admission.slots()


def test_the_wait_for_a_slot_is_said_once_and_only_when_there_is_one() -> None:
    said: list[str] = []
    with admission.slot(1, waiting=lambda: said.append("free?")):
        pass
    assert said == []  # free at once: no line
    inside = threading.Event()

    def hold() -> None:
        with admission.slot(1):
            inside.set()
            time.sleep(0.8)

    a = threading.Thread(target=hold)
    a.start()
    inside.wait(5)
    with admission.slot(1, waiting=lambda: said.append("waiting")) as waited:
        assert waited >= 0.3
    a.join()
    assert said == ["waiting"]
