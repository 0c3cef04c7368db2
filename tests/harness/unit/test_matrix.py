from pathlib import Path

import pytest

from harness import matrix
from harness.errors import InputError

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def test_default_matrix_has_twelve_cells_in_file_order() -> None:
    m = matrix.load(matrix.PACKAGED / "default.toml")
    ids = [c.id for c in m.cells()]
    assert len(ids) == 12
    assert ids[:4] == ["0.61-bridge", "0.61-host", "0.61-custom-network", "0.61-host-gateway"]
    assert {t.tag: t.api for t in m.targets} == {"0.61": "v0", "0.62": "v0", "latest": "canvas"}
    assert m.backend == "auto"


def test_tasks_default_to_the_whole_catalog_and_can_be_none(tmp_path: Path) -> None:
    from harness.tasks import CATALOG

    assert matrix.load(write(tmp_path, "[[targets]]\ntag = '0.62'\n[modes.host]\n")).tasks == tuple(CATALOG)
    none = matrix.load(write(tmp_path, "[run]\ntasks = []\n[[targets]]\ntag = '0.62'\n[modes.host]\n"))
    assert none.tasks == () and none.llm == "auto"


def test_headless_is_an_axis_with_its_own_cell_ids() -> None:
    m = matrix.load(matrix.PACKAGED / "headless.toml")
    ids = [c.id for c in m.cells()]
    assert ids[:4] == ["0.62-bridge", "0.62-bridge-headless", "0.62-host-gateway", "0.62-host-gateway-headless"]
    assert m.select(["0.62-bridge-headless"])[0].entrypoint == "headless"


def test_smoke_matrix_loads() -> None:
    m = matrix.load(matrix.PACKAGED / "smoke.toml")
    assert [c.id for c in m.cells()] == ["0.62-bridge", "0.62-host-gateway"]


def test_env_layers_and_budgets(tmp_path: Path) -> None:
    m = matrix.load(write(tmp_path, """
[run]
connect_budget = 30
[env]
A = "1"
FLAG = true
[[targets]]
tag = "0.62.0"
[modes.host]
env = { B = "2" }
"""))
    assert m.connect_budget == 30.0
    assert m.env == {"A": "1", "FLAG": "true"}
    assert m.modes[0].env == {"B": "2"}


@pytest.mark.parametrize(("text", "message"), [
    ("x = [", "invalid TOML"),
    ("[[targets]]\ntag = '0.62'\n[modes.bridg]\n", "modes.bridg: unknown mode"),
    ("[[targets]]\ntag = '0.62'\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "targets[1].tag: duplicate tag"),
    ("[[targets]]\ntag = 'v0.62'\n[modes.host]\n", "targets[0].tag: expected MAJOR.MINOR"),
    ("[[targets]]\ntag = '0.62'\napi = 'v9'\n[modes.host]\n", "targets[0].api: expected one of v0, v1"),
    ("[run]\nbackend = 'docker'\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "run.backend"),
    ("[run]\nconnect_budget = -1\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "run.connect_budget"),
    ("[[targets]]\ntag = '0.62'\n", "modes: expected at least one"),
    ("[modes.host]\n", "targets: expected at least one"),
    ("[[targets]]\ntag = '0.62'\n[modes.host]\nenv = { '1BAD' = 'x' }\n", "modes.host.env.1BAD"),
    ("colour = 'red'\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "colour: unknown key"),
    ("[run]\ntasks = ['create-fil']\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "run.tasks[0]: unknown task"),
    ("[run]\ntasks = ['repo', 'repo']\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "run.tasks[1]: duplicate"),
    ("[run]\ntasks = 'repo'\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "run.tasks: expected a list"),
    ("[run]\nentrypoints = ['tui']\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "run.entrypoints"),
    ("[run]\nllm = 'gpt'\n[[targets]]\ntag = '0.62'\n[modes.host]\n", "run.llm: expected one of"),
    ("[[targets]]\ntag = '7.0'\n[modes.host]\n", "targets[0].tag: tag '7.0': no API generation covers"),
    # an Agent Canvas release older than its adapter's facts, by either spelling: before anything is built
    ("[[targets]]\ntag = '1.10.0'\napi = 'canvas'\n[modes.host]\n", "targets[0].tag: '1.10.0': older than 1.13.0"),
    ("[[targets]]\ntag = 'canvas-1.10'\n[modes.host]\n", "targets[0].tag: 'canvas-1.10': older than 1.13.0"),
    ("[[targets]]\ntag = '0.62'\nconstraints = 'no-such-lock.txt'\n[modes.host]\n",
     "targets[0].constraints: no such file"),
])
def test_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        matrix.load(path)
    assert str(path) in str(e.value)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read matrix file"):
        matrix.load(tmp_path / "nope.toml")


def test_select_only_and_unknown_cell() -> None:
    m = matrix.load(matrix.PACKAGED / "default.toml")
    assert [c.id for c in m.select(["0.62-host"])] == ["0.62-host"]
    with pytest.raises(InputError, match=r"--only 0\.63-host: no such cell"):
        m.select(["0.63-host"])


def test_app_env_flags() -> None:
    assert matrix.parse_app_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(InputError, match="--app-env 'nope'"):
        matrix.parse_app_env(["nope"])


def test_constraints_are_found_next_to_the_matrix_file(tmp_path: Path) -> None:
    (tmp_path / "lock.txt").write_text("httpx==0.28.1\n")
    m = matrix.load(write(tmp_path, "[[targets]]\ntag = '0.62'\nconstraints = 'lock.txt'\n[modes.host]\n"))
    assert m.targets[0].constraints == str(tmp_path / "lock.txt")


def test_matrix_by_name_or_path_and_the_old_checkout_path_is_explained(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # any folder: the shipped matrices come with the package
    assert matrix.locate("smoke") == matrix.PACKAGED / "smoke.toml"
    assert matrix.load("default").select([])  # by name, from an empty folder
    (tmp_path / "smoke").write_text("")  # a file of that name here is the file, not the shipped one
    assert matrix.locate("smoke") == Path("smoke")
    with pytest.raises(InputError, match=r"matrices/default.toml: no such matrix file .*--matrix default"):
        matrix.locate("matrices/default.toml")
    with pytest.raises(InputError,
                       match=r"--matrix nope: neither a file nor a shipped matrix \(backends, callers, default, "):
        matrix.locate("nope")
