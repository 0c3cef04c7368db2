"""Many hosts, one report: `oh-matrix merge DIR... --out DIR`.

Which configuration works depends on the host (distro, daemon, firewall), so a fleet runs
the matrix on several. Merged cells keep their verdicts and evidence untouched and gain the
host as a dimension: ids become `HOST/TAG-MODE`. A host is named by its label
(`OH_MATRIX_HOST`), else its hostname.

At fleet scale the report is read by what differs, so the merge also decides:

- **host groups**: hosts whose every cell came out the same (`CellResult.outcome`: verdict,
  cause, direction, failed tasks) are one group; reports show each group once, by the cells
  of its first host, and list its members;
- **disagreements**: each cell whose outcome differs between hosts, every side with its
  hosts, groups and host classes, and the first line of evidence of the side's shown cell;
  whether the split follows the host classes or runs through one, and the host facts each
  side shares and the sides do not (the default bridge's options, its gateway, the socket);
- **recommendations**: for the whole fleet and per host class (OS, daemon version,
  rootless, remote, native nftables tables), each from the cell's worst host in that set: a configuration counts only
  where it passed on every host that ran it.
"""

from __future__ import annotations

import itertools
import string
import uuid
from collections.abc import Iterable

from harness import commit, version
from harness.errors import InputError
from harness.model import CellResult, Disagreement, Host, HostGroup, Recommendation, Run, Side
from harness.results.recommend import recommend


def host_class(host: Host) -> str:
    """OS / engine and version (`Docker 20.10.24`, `Podman 4.3.1`: podman's service answers the
    same API with other networking), then what changes every path a cell's packets take: a
    rootless daemon, a remote one, and the firewall's front end when it holds tables of its own."""
    engine, kind = ("Podman", host.daemon_kind.replace(" podman", "")) if host.engine == "podman" else (
        "Docker", host.daemon_kind)
    return f"{host.os or '?'} / {engine} {host.server_version or '?'}{kind}{_firewall_kind(host.firewall)}"


def _firewall_kind(firewall: str | None) -> str:
    """` / nftables` when native nftables tables (nftables.conf, firewalld) hold rules beside
    iptables', whose rules the harness reads as iptables prints them; nothing otherwise."""
    if not firewall or "nftables (" not in firewall or "no tables of its own" in firewall:
        return ""
    return " / nftables"


def _group_name(i: int) -> str:
    return string.ascii_uppercase[i] if i < 26 else f"G{i + 1}"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _worse(a: CellResult, b: CellResult) -> CellResult:
    """The host's cell that speaks for a set of hosts: one that did not pass beats one that
    did; between two that passed, the slower."""
    if a.passed != b.passed:
        return b if a.passed else a
    return b if (b.connect.seconds or 0) > (a.connect.seconds or 0) else a


def across(cells: list[CellResult], hosts: int) -> Recommendation:
    """What to deploy on every one of `hosts` hosts: each matrix cell by its worst host."""
    worst: dict[str, CellResult] = {}
    for c in cells:
        key = c.id.removeprefix(f"{c.host}/")
        worst[key] = _worse(worst[key], c) if key in worst else c
    # tags without the host, so the reasons read "0.62 is the newest release ..."
    rec = recommend([c.model_copy(update={"tag": c.base_tag or c.tag}) for c in worst.values()])
    if hosts > 1 and (rec.cell or rec.best_remedy):
        rec.why = f"Passed on all {hosts} hosts: {rec.why}"
    elif hosts > 1:
        rec.why = (f"every configuration failed on at least one of the {hosts} hosts (the disagreements say "
                   "where); see the recommendation per host class")
    return rec


def groups(runs: list[tuple[str, Run]], classes: dict[str, str]) -> list[HostGroup]:
    """Hosts with the same outcome in every cell (a cell a host did not run counts too)."""
    ids = _unique(c.id for _, run in runs for c in run.cells)
    by_signature: dict[tuple[str | None, ...], list[str]] = {}
    for label, run in runs:
        outcome = {c.id: c.outcome for c in run.cells}
        by_signature.setdefault(tuple(outcome.get(i) for i in ids), []).append(label)
    ordered = sorted(by_signature.values(), key=len, reverse=True)  # stable: ties keep run order
    return [HostGroup(name=_group_name(i), hosts=hosts, host_classes=_unique(classes[h] for h in hosts))
            for i, hosts in enumerate(ordered)]


# Facts that name a host rather than describe it: they differ between any two hosts. The
# oh-matrix version stays a fact: hosts that ran another harness may judge a cell otherwise
# (its commit says the same again, and a dirty one differs everywhere).
NOT_FACTS = {"hostname", "label", "run_id", "host_class", "oh_matrix_commit"}


def facts(host: Host) -> dict[str, str]:
    """A host's facts, flat: `bridge.enable_icc`, `proxies.HTTP_PROXY`, `kernel`, ..."""
    out: dict[str, str] = {}
    for key, value in host.model_dump().items():
        if key in NOT_FACTS:
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": str(v) for k, v in value.items()})
        elif value is not None:
            out[key] = str(value)
    return out


SHOWN_FACTS = 4  # a disagreement lists at most this many facts (or pairs of facts)


def distinguishing(sides: list[Side], host_facts: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """What may explain a split: host facts whose values on one side never occur on another
    (`userland_proxy`: `on` / `off`); when no single fact does that, pairs of facts that do
    together (`bridge.enable_icc & userland_proxy`: `true & on, false & on` / `false & off`,
    a cause that needs both). {facts: each side's values, in the sides' order}."""
    keys = _unique(k for side in sides for h in side.hosts for k in host_facts[h])

    def values(side: Side, ks: tuple[str, ...]) -> list[str]:
        return sorted({" & ".join(host_facts[h].get(k, "—") for k in ks) for h in side.hosts})

    def separating(candidates: Iterable[tuple[str, ...]]) -> dict[str, list[str]]:
        out = {}
        for ks in candidates:
            per_side = [values(side, ks) for side in sides]
            seen = [v for vs in per_side for v in vs]
            if len(seen) == len(set(seen)):  # no value (or pair of values) on two sides
                out[" & ".join(ks)] = [", ".join(vs) for vs in per_side]
        return out

    found = separating((k,) for k in keys) or separating(itertools.combinations(keys, 2))
    return dict(list(found.items())[:SHOWN_FACTS])


def disagreements(runs: list[tuple[str, Run]], host_groups: list[HostGroup],
                  classes: dict[str, str]) -> list[Disagreement]:
    group_of = {h: g for g in host_groups for h in g.hosts}
    host_facts = {label: facts(run.host.model_copy(update={"oh_matrix_version": run.oh_matrix_version}))
                  for label, run in runs}
    rank = {h: i for i, h in enumerate(h for g in host_groups for h in g.hosts)}
    cells: dict[str, dict[str, CellResult]] = {}  # matrix cell id -> host -> cell
    for label, run in runs:
        for c in run.cells:
            cells.setdefault(c.id, {})[label] = c
    out = []
    for cid, by_host in cells.items():
        answers: dict[str, list[str]] = {}
        for host, cell in sorted(by_host.items(), key=lambda hc: rank[hc[0]]):
            answers.setdefault(cell.outcome, []).append(host)
        if len(answers) < 2:
            continue
        sides = []
        for outcome, hosts in sorted(answers.items(), key=lambda oh: -len(oh[1])):
            shown = group_of[hosts[0]].hosts[0]  # a group lies on one side whole: its first host
            cell = by_host[shown]
            sides.append(Side(outcome=outcome, verdict=cell.connect.verdict, cause=cell.connect.cause,
                              hosts=hosts, groups=_unique(group_of[h].name for h in hosts),
                              host_classes=_unique(classes[h] for h in hosts), cell=f"{shown}/{cid}",
                              why=cell.why()))
        split = [set(s.host_classes) for s in sides]
        by_class = len(set().union(*split)) > 1 and sum(map(len, split)) == len(set().union(*split))
        out.append(Disagreement(cell=cid, sides=sides, by_host_class=by_class,
                                host_facts=distinguishing(sides, host_facts)))
    return out


def merge(runs: list[Run]) -> Run:
    if len(runs) < 2:
        raise InputError("merge: give at least two run folders")
    cells: list[CellResult] = []
    hosts: dict[str, Host] = {}
    classes: dict[str, str] = {}
    labelled: list[tuple[str, Run]] = []
    for run in runs:
        label = run.host.name or run.run_id[:8]
        if label in hosts:  # two runs from one host: keep both, apart
            label = f"{label}-{run.run_id[:6]}"
        cls = classes[label] = host_class(run.host)
        hosts[label] = run.host.model_copy(update={"run_id": run.run_id, "host_class": cls,
                                                   "oh_matrix_version": run.oh_matrix_version,
                                                   "oh_matrix_commit": run.oh_matrix_commit})
        labelled.append((label, run))
        for cell in run.cells:
            cells.append(cell.model_copy(update={
                "id": f"{label}/{cell.id}", "tag": f"{cell.tag} @ {label}", "host": label, "host_class": cls,
                "base_tag": cell.tag}))
    host_groups = groups(labelled, classes)
    by_class: dict[str, list[CellResult]] = {}
    for c in cells:
        by_class.setdefault(classes[c.host or ""], []).append(c)
    per_class = {cls: across(c, sum(v == cls for v in classes.values())) for cls, c in by_class.items()}
    return Run(run_id=uuid.uuid4().hex, started_at=min(r.started_at for r in runs),
               finished_at=max(r.finished_at for r in runs),
               backend=",".join(sorted({r.backend for r in runs})), cells=cells, hosts=hosts,
               merged_from=[r.run_id for r in runs], recommendation=across(cells, len(hosts)),
               recommendation_per_host_class=per_class, host_groups=host_groups,
               disagreements=disagreements(labelled, host_groups, classes),
               oh_matrix_version=version(), oh_matrix_commit=commit())
