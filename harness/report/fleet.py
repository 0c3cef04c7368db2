"""A merged run at fleet scale, for the terminal and both reports: the disagreements first,
then each host group once (the cells of its first host, grid rows `TAG @ GROUP`)."""

from __future__ import annotations

from harness.model import CellResult, Recommendation, Run, oh_matrix_label

HOSTS_SHOWN = 4  # host names listed in a terminal line before `+N`
WHY_CHARS = 110  # a line of evidence in the terminal's table


def shown_cells(run: Run) -> list[CellResult]:
    """The cells a report shows: a single run's, all; a merged run's, those of each host
    group's first host, tagged `TAG @ GROUP` (the grid's rows)."""
    if not run.host_groups:
        return run.cells
    first = {g.hosts[0]: (i, g.name) for i, g in enumerate(run.host_groups)}
    shown = [c for c in run.cells if c.host in first]
    shown.sort(key=lambda c: first[c.host or ""][0])  # group A's rows first (stable: matrix order within)
    return [c.model_copy(update={"tag": f"{c.base_tag or c.tag} @ {first[c.host or ''][1]}"}) for c in shown]


def same_cells(run: Run) -> dict[str, list[str]]:
    """A shown cell's id -> the ids of the same cell on its group's other hosts (the report
    anchors them at the shown cell, so a link to any host's cell lands there)."""
    out: dict[str, list[str]] = {}
    for g in run.host_groups:
        for c in run.cells:
            if c.host == g.hosts[0]:
                base = c.id.removeprefix(f"{c.host}/")
                out[c.id] = [f"{h}/{base}" for h in g.hosts[1:]]
    return out


def history_rows(run: Run) -> list[CellResult]:
    """The cells whose history the report charts: a single run's, each once; a merged run's,
    every host's (each host has a history of its own), one matrix cell's hosts together."""
    with_history = [c for c in run.cells if len(c.nights) > 1]
    if not run.host_groups:
        return with_history
    order = {cid: i for i, cid in enumerate(dict.fromkeys(c.id.removeprefix(f"{c.host}/") for c in run.cells))}
    return sorted(with_history, key=lambda c: order[c.id.removeprefix(f"{c.host}/")])  # stable: hosts in run order


def names(hosts: list[str], limit: int = HOSTS_SHOWN) -> str:
    more = len(hosts) - limit
    return ", ".join(hosts[:limit]) + (f" +{more}" if more > 0 else "")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _cut(text: str, limit: int = WHY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def disagreement_text(run: Run) -> str:
    """Which cells the hosts disagree on, who says what, and the first line of why:

        0.62-host-gateway: split by host class
          pass                  A,C (15): runner-00, runner-01, runner-02, runner-03 +11
                                harness: runtime ready at http://host.docker.internal:34021
          fail connect-timeout  B (4): runner-14, runner-15, runner-16, runner-17
                                probe: tcp 172.17.0.1:34021 from the app: timed out
    """
    matrix_cells = len({c.id.removeprefix(f"{c.host}/") for c in run.cells})
    if not run.disagreements:
        return f"disagreements: none, the {len(run.hosts)} hosts agree on all {matrix_cells} cells"
    lines = [f"disagreements: {len(run.disagreements)} of {matrix_cells} cells differ between the "
             f"{len(run.hosts)} hosts (why: the first line of evidence of the cell shown for each side)"]
    for d in run.disagreements:
        split = ("split by host class" if d.by_host_class
                 else "hosts of one class disagree (not OS, Docker version, rootless, remote or nftables)")
        lines.append(f"{d.cell}: {split}")
        width = max(len(s.outcome) for s in d.sides)
        for s in d.sides:
            lines.append(f"  {s.outcome.ljust(width)}  {','.join(s.groups)} ({len(s.hosts)}): {names(s.hosts)}")
            lines.append(f"  {''.ljust(width)}  {_cut(s.why or '(no evidence)')}")
        if d.host_facts:
            lines.append(f"  {'hosts differ in'.ljust(width)}  {differing(d.host_facts)}")
    return "\n".join(lines)


def differing(host_facts: dict[str, list[str]]) -> str:
    """`userland_proxy on / off; bridge.enable_icc & userland_proxy [false & on, true & on] / [false & off]`:
    each side's values, in the sides' order (bracketed when a side has several)."""
    def side(values: str, several: bool) -> str:
        return f"[{_cut(values, 80)}]" if several else _cut(values, 60)

    return "; ".join(f"{k} " + " / ".join(side(v, any(", " in x for x in vs)) for v in vs)
                     for k, vs in host_facts.items())


def recommendation_line(rec: Recommendation) -> str:
    """A merged recommendation in one line: the release and mode, not one host's cell."""
    if not rec.tag:
        return f"nothing: {rec.why}"
    version = f" ({rec.resolved_version})" if rec.resolved_version and rec.resolved_version != rec.tag else ""
    remedy = f" with remedy {rec.best_remedy.name}" if rec.best_remedy else ""
    return f"{rec.tag}{version} in mode {rec.mode}{remedy}" + (f"\n  {rec.docker_run}" if rec.docker_run else "")


def group_oh_matrix(run: Run) -> dict[str, str]:
    """A merged run's host group -> the oh-matrix its hosts ran (`?` for a run from before it
    was recorded), each distinct one once: hosts that ran other code may judge a cell otherwise."""
    out = {}
    for g in run.host_groups:
        hosts = [run.hosts[h] for h in g.hosts if h in run.hosts]
        labels = [oh_matrix_label(h.oh_matrix_version, h.oh_matrix_commit)
                  if h.oh_matrix_version or h.oh_matrix_commit else "?" for h in hosts]
        out[g.name] = ", ".join(dict.fromkeys(labels))
    return out


def groups_text(run: Run) -> str:
    head = (f"host groups: {len(run.hosts)} hosts in {len(run.host_groups)} group(s); "
            "a group's hosts agree on every cell, its first host's cells are shown")
    rows = [["group", "hosts", "names", "host classes", "oh-matrix"]]
    ran = group_oh_matrix(run)
    for g in run.host_groups:
        rows.append([g.name, str(len(g.hosts)), names(g.hosts), "; ".join(g.host_classes), ran[g.name]])
    return "\n".join([head, *_table(rows)])
