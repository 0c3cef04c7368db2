"""The registry of API generations is the one place that knows them."""

from __future__ import annotations

from pathlib import Path

from harness import generations


def test_no_generation_is_named_outside_its_registry_and_adapter() -> None:
    """What differs between generations lives in harness/generations.py and harness/openhands/
    (and the fixes' table, remedies/table.py, whose settings are OpenHands' own): anywhere else a
    generation's name or one of its settings in code (not a docstring) is a branch a new
    generation would have to find."""
    import ast

    names = set(generations.GENERATIONS)
    settings: set[str] = set()
    for g in generations.GENERATIONS.values():
        settings |= {v for v in (g.callback_port_env, g.runtime_image_env, g.label_env, g.startup_grace_env) if v}
        settings |= set(g.host_network_env)
    package = Path(generations.__file__).parent
    exempt = {package / "generations.py", package / "remedies" / "table.py"}
    found = []
    for path in sorted(package.rglob("*.py")):
        if path in exempt or (package / "openhands") in path.parents:
            continue
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            where = f"{path.relative_to(package.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                    and (node.value in names or any(s in node.value for s in settings)):
                found.append(f"{where} {node.value[:60]!r}")
            elif isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.rpartition(".")[2] in names or {a.name for a in node.names} & names):
                found.append(f"{where} imports {node.module}")
    assert not found, found


def test_a_1x_release_has_the_facts_its_own_code_has() -> None:
    """generations.V1.before, checked at each release where a fact changes."""
    from harness.generations import V1

    newest = V1.at("1.11.0")
    assert newest == V1 and V1.at(None) == V1 and V1.at("main") == V1
    assert V1.at("1.8.0") == V1
    assert V1.at("1.7.0").app_module == "openhands.server.listen:app" and V1.at("1.7.0").settings_call == "diff"
    r15 = V1.at("1.5.0")
    assert (r15.settings_call, r15.host_network_env, r15.host_network_ports, r15.startup_grace_env) == (
        "flat", {"SANDBOX_USE_HOST_NETWORK": "true"}, (8000, 8001, 8011), "SANDBOX_STARTUP_GRACE_SECONDS")
    r12 = V1.at("1.2.0")
    assert (r12.host_network_env, r12.host_network_ports, r12.startup_grace_env, r12.startup_grace) == (
        {}, (), None, 15.0)
    assert len(V1.differences("1.2.0")) == 5 and V1.differences("1.9.3") == []
    r11, r10 = V1.at("1.1.0"), V1.at("1.0.0")
    assert (r11.callback_port_env, r11.url_pattern_env, r11.runtime_named_at_random, r11.app_events,
            r11.startup_grace) == (None, None, True, "query", None)
    assert r11.sandbox_env_setting == "OH_AGENT_SERVER_ENV" and r10.sandbox_env_setting is None
    assert not r12.runtime_named_at_random and r12.url_pattern_env == "SANDBOX_CONTAINER_URL_PATTERN"
    assert len(V1.differences("1.0.0")) == 7
