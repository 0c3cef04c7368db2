from collections.abc import Callable
from pathlib import Path

import pytest

from harness import merge
from harness.errors import InputError
from harness.model import Run as RunModel
from harness.report.render import render_all

pytestmark = pytest.mark.unit
Run = Callable[..., RunModel]


def test_hosts_become_a_dimension_and_recommendations_stay_per_host_class(tmp_path: Path, synthetic_run: Run) -> None:
    a = synthetic_run("aaaa1111", "ci-1", "20.10", {"0.62-host": "pass", "0.62-host-gateway": "pass"})
    b = synthetic_run("bbbb2222", "ci-2", "28.2", {"0.62-host": "pass", "0.62-host-gateway": "fail"})
    merged = merge.merge([a, b])
    ids = [c.id for c in merged.cells]
    assert ids == ["ci-1/0.62-host", "ci-1/0.62-host-gateway", "ci-2/0.62-host", "ci-2/0.62-host-gateway"]
    assert {c.tag for c in merged.cells} == {"0.62 @ ci-1", "0.62 @ ci-2"}
    per = merged.recommendation_per_host_class
    assert per["Debian 12 / Docker 20.10"].mode == "host-gateway"
    assert per["Debian 12 / Docker 28.2"].mode == "host"  # its host-gateway failed
    assert merged.merged_from == ["aaaa1111", "bbbb2222"]
    written = render_all(merged, tmp_path)
    assert "0.62 @ ci-2" in written[0].read_text()


def test_needs_two_runs_and_a_known_schema(synthetic_run: Run) -> None:
    with pytest.raises(InputError, match="at least two"):
        merge.merge([synthetic_run("a", "h", "1", {})])


def test_a_host_label_names_the_host_instead_of_its_hostname(synthetic_run: Run) -> None:
    a = synthetic_run("aaaa1111", "fv-az123-456", "28.2", {"0.62-host": "pass"})
    a.host.label = "ubuntu-24.04"
    b = synthetic_run("bbbb2222", "build-7", "28.2", {"0.62-host": "pass"})
    merged = merge.merge([a, b])
    assert list(merged.hosts) == ["ubuntu-24.04", "build-7"]
    assert merged.hosts["ubuntu-24.04"].hostname == "fv-az123-456"  # still in the host's facts
    assert merged.cells[0].id == "ubuntu-24.04/0.62-host"
