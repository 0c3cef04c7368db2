"""The upgrade view in words: a table per mode and the difference between the two
recommended commands, for the terminal and the Markdown summary (report.html renders the
same model in its template)."""

from __future__ import annotations

from harness.model import Upgrade


def _label(tag: str, version: str | None) -> str:
    return tag if not version or version == tag else f"{tag} ({version})"


def lines(u: Upgrade) -> list[str]:
    before, after = _label(u.before, u.before_version), _label(u.after, u.after_version)
    rows = [("mode", before, after, "move")] + [(m.mode, m.before, m.after, m.move) for m in u.modes]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = [f"upgrade {before} -> {after} on this host:"]
    if u.crosses:
        out.append(f"  {u.crosses}")
    out += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for m in u.modes:
        if m.tasks_changed:
            out.append(f"  tasks that change in {m.mode}: {'; '.join(m.tasks_changed)}")
    out.append(f"  recommended: {u.before} in {u.mode_before or 'no mode (nothing passed)'} -> "
               f"{u.after} in {u.mode_after or 'no mode (nothing passed)'}")
    if u.command_before and u.command_after:
        out.append(f"  command, added:   {'; '.join(u.settings_added) or 'nothing'}")
        out.append(f"  command, removed: {'; '.join(u.settings_removed) or 'nothing'}")
        if u.image_before != u.image_after:
            out.append(f"  command, image:   {u.image_before} -> {u.image_after}")
    return out
