"""THE matrix: one test per cell (`TAG-MODE`). Did the app reach its runtime?"""

import pytest

from harness.model import CellResult
from harness.plugin import describe_failure


def test_connect(connect_result: CellResult) -> None:
    if connect_result.connect.verdict != "pass":
        pytest.fail(describe_failure(connect_result), pytrace=False)
