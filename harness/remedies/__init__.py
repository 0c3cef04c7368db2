"""Known fixes, as data tied to the causes they address, and the search that tries them.

A remedy is a change of the app container's environment, and for some a change of mode
(the documented host-network fix is `--network host` plus two variables), so trying one is
the same real cell run again with that env added, in that mode; whether it turns the cell
green is what the rerun shows, never what the table claims. The room's parts:

- `table`: the entries (docs/remedies.md says where each comes from), each a function of the
  failed cell's facts;
- `context`: those facts, built in one place from the cell's result, the cell and the run's
  host (`Context.of`); the entries ask the cell's mode and generation through it;
- `search`: which entries apply to a failed cell, their reruns, and `attempt`, the one call
  the cell runner (harness/cells/runner.py) makes.
"""

from harness.remedies.context import Context
from harness.remedies.search import Change, Rerun, applicable, attempt, search
from harness.remedies.table import APP_PORT, REMEDIES, Remedy, unknown_names

__all__ = ["APP_PORT", "REMEDIES", "Change", "Context", "Remedy", "Rerun", "applicable", "attempt", "search",
           "unknown_names"]
