"""Deployments read as compose and docker read them, placed on this machine without touching
anything of the user's, and refused in one line when the harness cannot honour them."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import deployments, generations, matrix
from harness.deployments import commands, compose
from harness.errors import InputError, PlacementError

ROOT = Path(__file__).resolve().parents[4]


def write(folder: Path, name: str, text: str) -> Path:
    (folder / name).write_text(text)
    return folder / name


def matrix_with(folder: Path, table: str) -> Path:
    return write(folder, "m.toml", f'[[targets]]\ntag = "0.62"\n[[targets]]\ntag = "latest"\n{table}')


class Site:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port, self.made = tmp, 62000, list[str]()
        self.locals, self.listeners = set[str](), set[int]()

    def free_port(self) -> int:
        self.port += 1
        return self.port

    def scratch(self, why: str) -> str:
        folder = self.tmp / f"scratch{len(self.made)}"
        folder.mkdir()
        self.made.append(str(folder))
        return str(folder)

    def same_path(self, path: str) -> str | None:
        return None if Path(path).exists() else path

    def subnet(self, network: str) -> tuple[str, str] | None:
        return ("172.30.0.0/16", "172.30.0.1")  # what a daemon gives a new network

    def local(self, address: str) -> bool:
        return address in self.locals  # this machine's addresses beyond loopback: none unless a test says so

    def listening(self, port: int) -> bool:
        return port in self.listeners  # the daemon host's ports in use: none unless a test says so


COMPOSE = """
services:
  openhands:
    image: docker.openhands.dev/openhands/openhands:${OH_TAG:-0.59}
    ports: ["127.0.0.1:4000:3000", "22:22"]
    env_file: [oh.env]
    environment:
      OH_WEB_URL: http://localhost:4000
      WORKSPACE_MOUNT_PATH: ${HOME}/work
      SANDBOX_USER_ID: 1000
      LOG_JSON: true
      FROM_SHELL:
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - ~/work:/opt/workspace_base
      - state:/.openhands
    extra_hosts: ["host.docker.internal=host-gateway"]
    restart: unless-stopped
volumes:
  state: {}
"""


def test_a_compose_service_is_read_as_compose_reads_it(tmp_path: Path) -> None:
    write(tmp_path, "oh.env", "LLM_API_KEY=sk-in-env-file\nLOG_JSON=false\n")
    path = write(tmp_path, "compose.yml", COMPOSE)
    env = {"HOME": "/home/ann", "FROM_SHELL": "yes"}
    spec, name = compose.load([path], None, compose.ComposeFiles(), environ=env)
    assert name == "openhands" and spec.image == "docker.openhands.dev/openhands/openhands:0.59"
    assert spec.environment == {"LLM_API_KEY": "sk-in-env-file", "LOG_JSON": "true", "OH_WEB_URL":
                                "http://localhost:4000", "WORKSPACE_MOUNT_PATH": "/home/ann/work",
                                "SANDBOX_USER_ID": "1000", "FROM_SHELL": "yes"}  # environment over env_file
    assert [(p.address, p.host, p.container) for p in spec.ports] == [("127.0.0.1", 4000, 3000), ("", 22, 22)]
    assert spec.extra_hosts == {"host.docker.internal": "host-gateway"}
    assert [(v.source, v.target, v.kind) for v in spec.volumes] == [
        ("/var/run/docker.sock", "/var/run/docker.sock", "bind"), ("~/work", "/opt/workspace_base", "bind"),
        ("state", "/.openhands", "volume")]
    assert [n.name for n in spec.networks] == ["default"]  # compose's project network


def test_compose_files_merge_in_order_and_the_project_env_file_interpolates(tmp_path: Path) -> None:
    write(tmp_path, ".env", "PORT=4100\n")
    base = write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['${PORT}:3000']\n"
                                          "    environment: [A=1, B=2]\n")
    over = write(tmp_path, "compose.override.yml", "services:\n  oh:\n    environment: {B: 3, C: 4}\n"
                                                   "    extra_hosts: ['h:1.2.3.4']\n")
    spec, _ = compose.load([base, over], "oh", compose.ComposeFiles(), environ={})
    assert spec.environment == {"A": "1", "B": "3", "C": "4"} and spec.ports[0].host == 4100
    assert spec.extra_hosts == {"h": "1.2.3.4"}


@pytest.mark.parametrize(("text", "said"), [
    ("services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n    runtime: nvidia\n",
     "services.oh.runtime: the harness cannot honour this key"),
    ("services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n    network_mode: service:db\n",
     "services.oh.network_mode: 'service:db'"),
    ("services:\n  oh:\n    image: x\n    ports: ['3000-3001:3000-3001']\n", "a port range cannot be honoured"),
    ("services:\n  oh:\n    image: x\n    ports: ['4000:3000']\n    networks: [nope]\n",
     "'nope' is not declared under the top-level networks"),
    ("services:\n  oh:\n    image: x\n    ports: ['3012:3012']\n",
     "ports: publishes 3012:3012 but no port an OpenHands app listens on in its container (3000 or 8000)"),
    ("services:\n  oh:\n    image: x\n    ports: 3000\n", "services.oh.ports: 3000 is not of type 'array'"),
    ("services:\n  oh: [\n", "not valid YAML (line 3)"),
    ("services:\n  oh:\n    image: ${TAG:?set TAG first}\n    ports: ['3000:3000']\n", "TAG: set TAG first"),
])
def test_what_cannot_be_honoured_is_one_line_naming_file_service_and_key(tmp_path: Path, text: str,
                                                                         said: str) -> None:
    write(tmp_path, "compose.yml", text)
    with pytest.raises(InputError, match=None) as e:
        deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    assert said in str(e.value) and str(tmp_path / "compose.yml") in str(e.value) and "\n" not in str(e.value)


# The Compose Specification's own examples (its Interpolation section), then compose-go's template
# tests, which are what compose does where the text says less: FOO set, EMPTY set but empty.
SPEC_ENV = {"FOO": "first", "EMPTY": "", "VARIABLE": "set"}


@pytest.mark.parametrize(("text", "read"), [
    ("${UNSET:-default}", "default"), ("${EMPTY:-default}", "default"), ("${VARIABLE:-default}", "set"),
    ("${UNSET-default}", "default"), ("${EMPTY-default}", ""),
    ("${VARIABLE:?err}", "set"), ("${VARIABLE?err}", "set"), ("${EMPTY?err}", ""),
    ("${UNSET:+other}", ""), ("${EMPTY:+other}", ""), ("${EMPTY+other}", "other"), ("${FOO:+other}", "other"),
    ("${UNSET:-${FOO}}", "first"), ("${UNSET?$FOO}", "ERR"), ("${UNSET:-${FOO:-default}}", "first"),
    ("${UNSET:-${NOPE:-default}}", "default"), ("${A:-${B:-x}}", "x"), ("${A:-${B:-${C:-deep}}}!", "deep!"),
    ("ok ${UNSET-${FOO} ${FOO}}", "ok first first"), ("ok ${EMPTY+$FOO ${FOO:+second}}", "ok first second"),
    ("${A:+${A},}B", "B"), ("${UNSET:-/non:-alphanumeric}", "/non:-alphanumeric"),
    ("$$VAR_NOT_INTERPOLATED_BY_COMPOSE", "$VAR_NOT_INTERPOLATED_BY_COMPOSE"), ("$${FOO}", "${FOO}"),
    ("$FOO-bar", "first-bar"), ("$foo ${foo:-low}", " low"), ("${UNSET} and $UNSET", " and "),
    ("a $ string", "a $ string"), ("^REGEX$", "^REGEX$"), ("$}", "$}"), ("$1 $-", "$1 $-"),
    ("${A:-x}} $FOO", "x} first"), ('${A:-{"a":{"b":1}}}', '{"a":{"b":1}}'),
])
def test_interpolation_is_the_compose_specifications(text: str, read: str) -> None:
    if read == "ERR":
        with pytest.raises(InputError, match=r"^f.yml: k: UNSET: first$"):  # the message is interpolated too
            compose.interpolate(text, SPEC_ENV, "f.yml: k")
    else:
        assert compose.interpolate(text, SPEC_ENV, "f.yml: k") == read


@pytest.mark.parametrize("text", ["${", "${FOO", "${}", "${ FOO}", "${FOO }", "${FOO!}", "${FOO/a/b}",
                                  "${UNSET:-${FOO}", "x ${UNSET:-${} y"])
def test_a_brace_compose_would_call_an_invalid_template_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match=r"^f.yml: k: .*not an interpolation compose reads"):
        compose.interpolate(text, SPEC_ENV, "f.yml: k")


def test_defaults_and_messages_are_read_only_when_used() -> None:
    """`${A?${B?unset}}` with A set is A: compose evaluates the nested template lazily."""
    assert compose.interpolate("${A?${B?unset}}", {"A": "a"}, "f") == "a"
    assert compose.interpolate("${A:-${B:?}}", {"A": "a"}, "f") == "a"
    with pytest.raises(InputError, match=r"^f: B: required variable is not set$"):
        compose.interpolate("${A:-${B:?}}", {}, "f")


def test_a_required_variable_unset_names_the_file_the_key_and_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n"
                                          "    environment:\n      - KEY=${LLM_KEY:?set LLM_KEY to your key}\n")
    with pytest.raises(InputError) as e:
        compose.load([path], "oh", compose.ComposeFiles(), environ={})
    assert str(e.value) == f"{path}: services.oh.environment[0]: LLM_KEY: set LLM_KEY to your key"
    nested = write(tmp_path, "nested.yml", "services:\n  oh:\n    image: oh:${TAG:-${CHANNEL:-0.62}}\n"
                                           "    ports: ['3000:3000']\n")
    assert compose.load([nested], "oh", compose.ComposeFiles(), environ={})[0].image == "oh:0.62"
    assert compose.load([nested], "oh", compose.ComposeFiles(), environ={"CHANNEL": "1.0"})[0].image == "oh:1.0"


def test_files_merge_as_compose_merges_lists_and_nulls(tmp_path: Path) -> None:
    """The Merge section: a later file's list is appended (cap_add, networks), not put in place of
    the earlier one, but a command is replaced."""
    base = write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n"
                                          "    cap_add: [NET_ADMIN]\n    networks: [front]\n"
                                          "    command: [a, b]\n    environment: {A: 1}\n"
                                          "networks:\n  front: {}\n  back: {}\n")
    over = write(tmp_path, "over.yml", "services:\n  oh:\n    cap_add: [SYS_TIME, NET_ADMIN]\n"
                                       "    networks: {back: {aliases: [oh]}}\n    command: [c]\n")
    spec, _ = compose.load([base, over], "oh", compose.ComposeFiles(), environ={})
    assert spec.flags == (("--cap-add", "NET_ADMIN"), ("--cap-add", "SYS_TIME"))
    assert [n.name for n in spec.networks] == ["front", "back"] and spec.command == ("c",)
    assert compose.merge({"a": [1], "b": {"c": 1}}, {"a": None, "b": {"c": None}}) == {"a": [1], "b": {"c": 1}}


def test_reset_and_override_are_compose_merge_tags_and_honoured_as_compose_merges(tmp_path: Path) -> None:
    """The Compose Specification's own examples (its Merge section): `!reset` clears what an earlier
    file set, `!override` replaces it instead of merging; neither is "not valid YAML"."""
    base = write(tmp_path, "compose.yaml", "services:\n  app:\n    image: myapp\n    ports:\n      - \"8080:80\"\n"
                                           "    environment:\n      FOO: BAR\n      KEEP: 1\n")
    reset = write(tmp_path, "reset.yaml", "services:\n  app:\n    image: myapp\n    ports: !reset []\n"
                                          "    environment:\n      FOO: !reset null\n")
    spec, _ = compose.load([base, reset], "app", compose.ComposeFiles(), environ={})
    assert spec.ports == () and spec.environment == {"KEEP": "1"}
    override = write(tmp_path, "override.yaml", "services:\n  app:\n    ports: !override\n      - \"8443:443\"\n")
    spec, _ = compose.load([base, override], "app", compose.ComposeFiles(), environ={})
    assert [(p.host, p.container) for p in spec.ports] == [(8443, 443)]  # not 8080:80 as well
    # a list base is compose's mapping for a reset by name; a reset item leaves its own file's list
    listed = write(tmp_path, "listed.yaml", "services:\n  app:\n    image: x\n    environment: [FOO=1, B=2]\n"
                                            "    cap_add: [NET_ADMIN]\n")
    over = write(tmp_path, "over.yaml", "services:\n  app:\n    environment:\n      FOO: !reset\n"
                                        "    cap_add: !override [SYS_TIME, !reset X]\n    user: !override 1000\n")
    spec, _ = compose.load([listed, over], "app", compose.ComposeFiles(), environ={})
    assert spec.environment == {"B": "2"} and spec.flags == (("--cap-add", "SYS_TIME"),) and spec.user == "1000"
    # in one file alone: a reset key is no key, an override value is the value
    alone, _ = compose.load([reset], "app", compose.ComposeFiles(), environ={})
    assert alone.ports == () and alone.environment == {}


def test_a_fix_writes_a_plain_key_where_the_file_resets_it(tmp_path: Path) -> None:
    from harness.deployments.fixes import fix

    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n"
                                   "    extra_hosts: !reset []\n")
    d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    diff = fix(d, {}, {"host.docker.internal": "host-gateway"})
    assert "-    extra_hosts: !reset []\n" in diff and "+    - host.docker.internal:host-gateway\n" in diff
    assert "!reset" not in "".join(ln for ln in diff.splitlines() if ln.startswith("+"))


def test_yaml_1_2_keeps_a_port_mapping_a_string(tmp_path: Path) -> None:
    """PyYAML (YAML 1.1) reads 22:22 as the base-60 number 1342; compose does not."""
    path = write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports:\n      - 22:22\n"
                                          "      - 3000:3000\n")
    spec, _ = compose.load([path], "oh", compose.ComposeFiles(), environ={})
    assert [(p.host, p.container) for p in spec.ports] == [(22, 22), (3000, 3000)]


@pytest.mark.parametrize(("line", "said"), [
    ("docker run --gpus all -p 3000:3000 img", "unrecognized arguments: --gpus"),
    ("docker run -p 3000:3000 -e 'A=1 img", "does not parse as a shell would"),
    ("podman run -p 3000:3000 img", "'podman run -p 3000:3000 img': expected the docker run line"),
    ("docker run -p 3000:3000 --network container:db img", "--network container:db"),
])
def test_a_docker_run_line_that_cannot_be_honoured_is_one_line(tmp_path: Path, line: str, said: str) -> None:
    with pytest.raises(InputError) as e:
        deployments.load("readme", {"docker_run": line}, str(tmp_path / "m.toml"), None)
    assert said in str(e.value) and "deployments.readme" in str(e.value)


def test_a_docker_run_line_is_read_as_docker_reads_it(tmp_path: Path) -> None:
    write(tmp_path, "run.sh", "# how we run it\ndocker run -it --rm --pull=always \\\n"
                              "  -e SANDBOX_USER_ID=$(id -u) -e LOG_ALL_EVENTS=true -v ~/.openhands:/.openhands \\\n"
                              "  -p 3000:3000 --name openhands-app docker.openhands.dev/openhands/openhands:0.62\n")
    d = deployments.load("script", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None, commands.run)
    s = d.service
    assert s.network_mode == "bridge" and not s.networks and s.extra_hosts == {}  # no --add-host: as written
    assert s.environment["LOG_ALL_EVENTS"] == "true" and s.container_name == "openhands-app"
    assert d.files == {str(tmp_path / "run.sh"): (tmp_path / "run.sh").read_text()}


def test_the_placement_moves_ports_paths_and_names_and_says_so(tmp_path: Path) -> None:
    write(tmp_path, "oh.env", "LLM_API_KEY=sk-in-env-file\n")
    write(tmp_path, "compose.yml", COMPOSE.replace("127.0.0.1:4000:3000", "4000:3000"))
    os.environ.setdefault("HOME", "/root")
    d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    site = Site(tmp_path)
    lau = d.launch(generations.V1, image="app:1.11", env={"LOG_ALL_EVENTS": "true"}, host_port=61111,
                   networks={"default": "oh-matrix-x-latest-mine-default"}, site=site)
    placed = dict(o for o in lau.options(placed=True, name="oh-matrix-x-latest-mine"))
    env = lau.container_env()
    assert env["OH_WEB_URL"] == "http://localhost:61111"  # moved with host port 4000
    assert env["WORKSPACE_MOUNT_PATH"] == site.made[0]  # moved with ~/work
    assert "SANDBOX_HOST_PORT" not in env  # 4000:3000 leaves the 1.x callback at 3000, as on the user's host
    assert ("-p", "0.0.0.0:61111:3000") in lau.options(placed=True) and ("-p", "4000:3000") in lau.options(False)
    assert placed["--network"] == "oh-matrix-x-latest-mine-default" and placed["--name"] == "oh-matrix-x-latest-mine"
    volumes = [v for f, v in lau.options(placed=True) if f == "-v"]
    assert volumes[1:] == [f"{site.made[0]}:/opt/workspace_base", f"{site.made[1]}:/.openhands"]
    line = shlex.split(lau.docker_run(frozenset({"LLM_API_KEY"})).split(" && ")[-1])
    assert "-v" in line and "~/work:/opt/workspace_base" in line
    # the env file as written, its values never: the key is read from it where the line runs
    assert line[4:6] == ["--env-file", "oh.env"] and not any("LLM_API_KEY" in w for w in line)
    assert line[line.index("--name") + 1] == "openhands-app" and line[-1] == "app:1.11"
    assert any("host port 4000 is 61111" in n for n in lau.placement)
    assert any("~/work (bind) is a temporary folder" in n for n in lau.placement)


def test_a_port_published_on_one_address_is_reached_by_the_harness_and_not_by_containers(tmp_path: Path) -> None:
    """`192.0.2.7:3000:3000` (the user's LAN address, absent here): loopback for the cell, which
    the gateway does not reach either; `127.0.0.2:...` is this machine's: as written, plus the
    loopback binding the harness reaches the API at, where no container reaches it."""
    for address, placed in (("192.0.2.7", ["127.0.0.1"]), ("127.0.0.1", ["127.0.0.1"]),
                            ("0.0.0.0", ["0.0.0.0"])):
        write(tmp_path, "compose.yml", f"services:\n  oh:\n    image: x\n    ports: ['{address}:3000:3000']\n")
        d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
        lau = d.launch(generations.V1, image="app:1.11", env={}, host_port=61112, networks={"default": "n"},
                       site=Site(tmp_path))
        assert [v.split(":")[0] for f, v in lau.options(placed=True) if f == "-p"] == placed, address
        assert ("-p", f"{address}:3000:3000") in lau.options(False)  # the line people read: as written
        assert any("is not an address of this machine" in n for n in lau.placement) == (address == "192.0.2.7")
    # published on an address of this machine's that is not loopback (the bridge gateway, say)
    site = Site(tmp_path)
    site.locals.add("198.51.100.9")
    only = deployments.load("g", {"docker_run": "docker run -p 198.51.100.9:3000:3000 img"}, str(tmp_path / "m"), None)
    lau = only.launch(generations.V1, image="a", env={}, host_port=61113, site=site)
    assert [v for f, v in lau.options(placed=True) if f == "-p"] == ["198.51.100.9:61113:3000", "127.0.0.1:61113:3000"]
    assert any("also published on 127.0.0.1:61113" in n for n in lau.placement)


def test_a_service_on_two_networks_joins_both_as_the_cells_own(tmp_path: Path) -> None:
    """A stack behind a reverse proxy: the app on the proxy's network and the stack's own."""
    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n"
                                   "    networks: [traefik, stack]\n"
                                   "networks:\n  traefik: {external: true}\n  stack: {}\n")
    d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    assert d.networks == ("traefik", "stack")
    lau = d.launch(generations.V0, image="app", env={}, host_port=61300,
                   networks={"traefik": "cell-traefik", "stack": "cell-stack"}, site=Site(tmp_path))
    assert [v for f, v in lau.options(placed=True) if f == "--network"] == ["cell-traefik", "cell-stack"]
    assert [v for f, v in lau.options(placed=False) if f == "--network"] == ["traefik", "stack"]
    assert lau.docker_run().startswith("docker network create traefik && docker network create stack && docker run")
    assert {"network traefik is the cell's own cell-traefik", "network stack is the cell's own cell-stack"} <= set(
        lau.placement)


def test_a_1x_deployment_publishing_3000_moves_the_callback_default_with_it(tmp_path: Path) -> None:
    d = deployments.load("readme", {"docker_run": "docker run -p 3000:3000 --add-host "
                                                  "host.docker.internal:host-gateway img"},
                         str(tmp_path / "m.toml"), None)
    lau = d.launch(generations.V1, image="app", env={}, host_port=61200, networks={}, site=Site(tmp_path))
    assert lau.container_env()["SANDBOX_HOST_PORT"] == "61200"
    assert "SANDBOX_HOST_PORT" not in lau.docker_run()  # not in what the user wrote


def test_a_deployment_is_placed_on_the_port_its_release_listens_on_or_said_to_publish_another(
        tmp_path: Path) -> None:
    """The app server listens on 3000 in its container, Agent Canvas on 8000: a compose file
    carried from one to the other publishes a port where nothing listens, which a cell of that
    release fails on (app-not-published), with the port a person reaches."""
    canvas, v0 = generations.CANVAS, generations.V0
    write(tmp_path, "canvas.yml", "services:\n  c:\n    image: ghcr.io/openhands/agent-canvas:1.20.0\n"
                                  "    ports: ['8000:8000']\n")
    write(tmp_path, "app.yml", "services:\n  oh:\n    image: x:0.62\n    ports: ['3000:3000']\n")
    mine = deployments.load("c", {"compose": "canvas.yml"}, str(matrix_with(tmp_path, "")), None)
    lau = mine.launch(canvas, image="canvas", env={}, host_port=61400, networks={"default": "n"}, site=Site(tmp_path))
    assert ("-p", "127.0.0.1:61400:8000") in lau.options(placed=True) and lau.not_published is None
    lau = mine.launch(v0, image="app", env={}, host_port=61401, networks={"default": "n"}, site=Site(tmp_path))
    assert lau.not_published is not None and lau.not_published.startswith(
        "your deployment publishes 8000:8000, but V0 (0.6x) listens on 3000 in its container")
    assert lau.user_port == 62001  # 8000 as written, the cell's free port
    carried = deployments.load("a", {"compose": "app.yml"}, str(matrix_with(tmp_path, "")), None)
    lau = carried.launch(canvas, image="canvas", env={}, host_port=61402, networks={"default": "n"},
                         site=Site(tmp_path))
    assert lau.not_published is not None and "publishes 3000:3000, but Agent Canvas" in lau.not_published
    # on the host network the cell's port goes to its own setting, the command stays as written
    write(tmp_path, "host.yml", "services:\n  c:\n    image: i\n    network_mode: host\n")
    host = deployments.load("h", {"compose": "host.yml"}, str(matrix_with(tmp_path, "")), None)
    lau = host.launch(canvas, image="canvas", env={}, host_port=61403, networks={}, site=Site(tmp_path))
    assert lau.container_env()["PORT"] == "61403" and lau.argv() == [] and lau.listen_port == 61403
    # publishing no port any app listens on is refused at once, as before
    write(tmp_path, "none.yml", "services:\n  oh:\n    image: x\n    ports: ['22:22']\n")
    with pytest.raises(InputError, match=r"publishes 22:22 but no port an OpenHands app listens on .*\(3000 or 8000\)"):
        deployments.load("n", {"compose": "none.yml"}, str(matrix_with(tmp_path, "")), None)


def test_deployments_are_modes_of_the_matrix(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['4000:3000']\n")
    m = matrix.load(matrix_with(tmp_path, '[modes.host-gateway]\n[deployments.mine]\ncompose = "compose.yml"\n'))
    assert [c.id for c in m.cells()] == ["0.62-host-gateway", "0.62-mine", "latest-host-gateway", "latest-mine",
                                         "own-mine"]
    again = matrix.parse(tomllib.loads(m.text), m.path, m.files)  # a worker: from the texts
    assert again.modes[1].deployment == m.modes[1].deployment
    with pytest.raises(InputError, match="host is a built-in mode"):
        matrix.load(matrix_with(tmp_path, '[deployments.host]\ncompose = "compose.yml"\n'))


@pytest.mark.parametrize(("image", "extra", "api"), [
    ("docker.openhands.dev/openhands/openhands:0.59", "", "v0"),
    ("registry.local:5000/oh/openhands:1.9.3", "", "v1"),
    ("openhands@sha256:" + "a" * 64, "", "v1"),  # no tag: latest's generation, checked on the image
    ("ours/openhands:prod", 'api = "v0"', "v0"),
])
def test_a_deployments_own_image_is_a_target_of_that_deployment_only(tmp_path: Path, image: str, extra: str,
                                                                      api: str) -> None:
    write(tmp_path, "compose.yml", f"services:\n  oh:\n    image: {image}\n    ports: ['4000:3000']\n")
    m = matrix.load(matrix_with(tmp_path, f'[modes.bridge]\n[deployments.mine]\ncompose = "compose.yml"\n{extra}\n'))
    own = m.targets[-1]
    assert (own.tag, own.image, own.deployment, own.api) == ("own-mine", image, "mine", api)
    assert [c.id for c in m.cells() if c.target == own] == ["own-mine"]  # not in the built-in modes
    assert matrix.upgrade_target(m, "own-mine") == "latest"  # from the image deployed today to a release


def test_a_deployments_own_image_needs_a_generation_and_can_be_left_out(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: ours/openhands:prod\n    ports: ['4000:3000']\n")
    with pytest.raises(InputError, match=r"deployments\.mine\.api: the deployment's image ours/openhands:prod has"):
        matrix.load(matrix_with(tmp_path, '[deployments.mine]\ncompose = "compose.yml"\n'))
    m = matrix.load(matrix_with(tmp_path, '[deployments.mine]\ncompose = "compose.yml"\nown_image = false\n'))
    assert [t.tag for t in m.targets] == ["0.62", "latest"]
    with pytest.raises(InputError, match=r"own_image: expected true or false"):
        matrix.load(matrix_with(tmp_path, '[deployments.mine]\ncompose = "compose.yml"\nown_image = "no"\n'))


def test_bad_deployments_stop_the_cli_before_the_daemon(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['4000:3000']\n    runtime: nvidia\n")
    write(tmp_path, "required.yml", "services:\n  oh:\n    image: ${TAG:?set TAG}\n    ports: ['4000:3000']\n")
    for table, said in (('compose = "compose.yml"', "services.oh.runtime"),
                        ('compose = "compose.yml"\nservice = "web"', "service 'web' is not in the file"),
                        ('docker_run = "docker run -p 3000:3000 --gpus all img"', "--gpus"),
                        ('compose = "required.yml"', "required.yml: services.oh.image: TAG: set TAG")):
        m = matrix_with(tmp_path, f"[deployments.mine]\n{table}\n")
        r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(m)], capture_output=True,
                           text=True, cwd=ROOT, timeout=60,
                           env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
        assert r.returncode == 2 and said in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_proven_fix_is_a_diff_of_the_compose_file_that_keeps_the_rest_as_written(tmp_path: Path) -> None:
    from harness.deployments.fixes import fix
    from harness.modes import APP_PORT_TOKEN

    text = ("# our stack\nservices:\n  openhands:\n    image: x   # pinned by ops\n    ports: ['4000:3000']\n"
            "    environment:\n      - LOG_ALL_EVENTS=true\n      - SANDBOX_HOST_PORT=3000\n")
    write(tmp_path, "compose.yml", text)
    d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    diff = fix(d, {"SANDBOX_HOST_PORT": APP_PORT_TOKEN, "OH_WEB_URL": f"http://host.docker.internal:{APP_PORT_TOKEN}"})
    assert diff.startswith(f"--- {tmp_path / 'compose.yml'}")
    assert "-      - SANDBOX_HOST_PORT=3000\n+      - SANDBOX_HOST_PORT=4000\n" in diff
    assert "+      - OH_WEB_URL=http://host.docker.internal:4000\n" in diff
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert len(changed) == 3  # one line changed, one added: comments and the rest as written
    assert (tmp_path / "compose.yml").read_text() == text  # the user's file itself is never written


def test_a_proven_fix_to_a_docker_run_line_is_the_line_with_the_flags_added(tmp_path: Path) -> None:
    from harness.deployments.fixes import fix

    line = "docker run -it --rm -e DOCKER_HOST_ADDR=x -p 3000:3000 -v ~/.openhands:/.openhands img:0.62"
    d = deployments.load("readme", {"docker_run": line}, str(tmp_path / "m.toml"), None)
    line = fix(d, {"DOCKER_HOST_ADDR": "172.17.0.1"})
    assert line == ("docker run -e DOCKER_HOST_ADDR=172.17.0.1 -it --rm -p 3000:3000 -v ~/.openhands:/.openhands "
                    "img:0.62")


def test_a_fix_that_changes_the_container_itself_is_a_diff_and_a_line_too(tmp_path: Path) -> None:
    from harness.deployments.fixes import fix

    text = ("services:\n  openhands:\n    image: x\n    ports: ['4000:3000']\n    networks: [stack]\n"
            "    environment:\n      LOG_ALL_EVENTS: 'true'\nnetworks:\n  stack: {}\n")
    write(tmp_path, "compose.yml", text)
    d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    hosts = {"host.docker.internal": "host-gateway"}
    assert "+    extra_hosts:\n+    - host.docker.internal:host-gateway\n" in fix(d, {}, hosts)
    host = fix(d, {"SANDBOX_USE_HOST_NETWORK": "true"}, None, "host")
    assert "-    ports: ['4000:3000']\n-    networks: [stack]\n" in host and "+    network_mode: host\n" in host
    assert "+      SANDBOX_USE_HOST_NETWORK: 'true'\n" in host or "+      SANDBOX_USE_HOST_NETWORK: true\n" in host
    # the deployment itself, changed for the rerun: what compose would run after the diff
    changed = d.changed(hosts, "host")
    assert (changed.service.network_mode, changed.service.ports, changed.service.networks) == ("host", (), ())
    assert changed.service.extra_hosts == hosts and d.service.extra_hosts == {}

    line = "docker run -it --rm -p 3000:3000 --network=mine -v /var/run/docker.sock:/var/run/docker.sock img:0.62"
    r = deployments.load("readme", {"docker_run": line}, str(tmp_path / "m.toml"), None)
    assert fix(r, {}, hosts) == ("docker run --add-host host.docker.internal:host-gateway -it --rm -p 3000:3000 "
                                 "--network=mine -v /var/run/docker.sock:/var/run/docker.sock img:0.62")
    assert fix(r, {"A": "1"}, None, "host") == ("docker run -e A=1 --network host -it --rm "
                                              "-v /var/run/docker.sock:/var/run/docker.sock img:0.62")


def test_an_app_published_on_loopback_only_is_published_on_the_gateway_too(tmp_path: Path) -> None:
    from harness.deployments.fixes import fix

    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports:\n      - 127.0.0.1:3000:3000\n")
    d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    assert d.api_on_loopback
    assert "       - 127.0.0.1:3000:3000\n+      - 172.17.0.1:3000:3000\n" in fix(d, {}, None, None, "172.17.0.1")
    changed = d.changed({}, None, "172.17.0.1")
    assert [(p.address, p.host) for p in changed.service.ports] == [("127.0.0.1", 3000), ("172.17.0.1", 3000)]
    line = deployments.load("l", {"docker_run": "docker run -p 127.0.0.1:3000:3000 img"}, str(tmp_path / "m.toml"),
                            None)
    assert fix(line, {}, None, None, "172.17.0.1") == "docker run -p 172.17.0.1:3000:3000 -p 127.0.0.1:3000:3000 img"


def test_a_dead_workers_temporary_folders_are_swept_with_its_run(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell removes its folders itself; a worker that died cannot: the run's sweep does."""
    import tempfile

    from harness.host import cleanup

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine = tmp_path / "oh-matrix-3e9fb741-0_62-mine-abc123"
    other = tmp_path / "oh-matrix-aaaaaaaa-0_62-mine-def456"  # another run's: left alone
    for folder in (mine, other):
        (folder / "state").mkdir(parents=True)
    assert cleanup.scratch_folders("3e9fb741d0a94b4c") == [str(mine)]
    assert not mine.exists() and other.exists()


def test_an_env_file_is_interpolated_as_compose_does_without_touching_the_process_environment() -> None:
    before = dict(os.environ)
    text = "BASE=http://${HOST:-localhost}:3000\nURL=${BASE}/api\nNEED=${MISSING:-fallback}\n"
    assert compose.read_env_file(text, {"HOST": "gw"}, "oh.env") == {
        "BASE": "http://gw:3000", "URL": "http://gw:3000/api", "NEED": "fallback"}
    assert dict(os.environ) == before
    with pytest.raises(InputError, match=r"oh.env: X: X: set X"):
        compose.read_env_file("X=${X:?set X}\n", {}, "oh.env")


def test_a_script_from_openhands_old_instructions_is_expanded_as_its_shell_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`export WORKSPACE_BASE=$(pwd)/workspace` then a line with `$(id -u)`, `$WORKSPACE_BASE` and a
    dated name (OpenHands 0.9's README): without the shell's expansions the app would be handed
    `SANDBOX_USER_ID=$(id -u)` and fail on the harness's misreading."""
    write(tmp_path, "run.sh", "#!/bin/sh\nexport WORKSPACE_BASE=$(pwd)/workspace\nmkdir -p $WORKSPACE_BASE\n\n"
                              "sudo -E docker run -it --pull=always \\\n  -e SANDBOX_USER_ID=$(id -u) \\\n"
                              "  -e WORKSPACE_MOUNT_PATH=$WORKSPACE_BASE -e 'LITERAL=$HOME' \\\n"
                              "  -v $WORKSPACE_BASE:/opt/workspace_base -p 3000:3000 \\\n"
                              "  --name openhands-app-$(date +%Y%m%d) ghcr.io/all-hands-ai/openhands:0.9\n")
    monkeypatch.chdir(tmp_path.parent)  # the matrix named relative to where oh-matrix runs: $(pwd) is still absolute
    d = deployments.load("old", {"docker_run_file": "run.sh"}, f"{tmp_path.name}/m.toml", None, commands.run)
    env = d.service.environment
    assert env["SANDBOX_USER_ID"] == str(os.getuid()) and env["LITERAL"] == "$HOME"
    assert env["WORKSPACE_MOUNT_PATH"] == f"{tmp_path}/workspace"  # $(pwd): the line's own folder
    assert d.service.volumes[0].source == f"{tmp_path}/workspace"
    assert d.service.container_name is not None and d.service.container_name[len("openhands-app-"):].isdigit()
    # the fix is the user's script with the flag added, everything else as written: the variables
    # and the substitutions stay theirs, the comment and the blank line go
    assert fixes_line(d) == ("export WORKSPACE_BASE=$(pwd)/workspace\nmkdir -p $WORKSPACE_BASE\n"
                             "sudo -E docker run -e DOCKER_HOST_ADDR=172.17.0.1 -it --pull=always \\\n"
                             "  -e SANDBOX_USER_ID=$(id -u) \\\n  -e WORKSPACE_MOUNT_PATH=$WORKSPACE_BASE "
                             "-e 'LITERAL=$HOME' \\\n  -v $WORKSPACE_BASE:/opt/workspace_base -p 3000:3000 \\\n"
                             "  --name openhands-app-$(date +%Y%m%d) ghcr.io/all-hands-ai/openhands:0.9")


def fixes_line(d: deployments.Deployment) -> str:
    from harness.deployments import fixes

    return fixes.fix(d, env={"DOCKER_HOST_ADDR": "172.17.0.1"})


def test_commands_on_one_line_are_read_in_order_and_the_fix_edits_the_docker_run_one(tmp_path: Path) -> None:
    write(tmp_path, "run.sh", "export WORKSPACE_BASE=$(pwd)/workspace; mkdir -p $WORKSPACE_BASE && "
                              "docker run -e 'A=x;y' -e WORKSPACE_MOUNT_PATH=$WORKSPACE_BASE -p 3000:3000 img\n")
    d = deployments.load("one", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None)
    assert d.service.environment == {"A": "x;y", "WORKSPACE_MOUNT_PATH": f"{tmp_path}/workspace"}
    assert fixes_line(d) == ("export WORKSPACE_BASE=$(pwd)/workspace; mkdir -p $WORKSPACE_BASE && docker run "
                             "-e DOCKER_HOST_ADDR=172.17.0.1 -e 'A=x;y' -e WORKSPACE_MOUNT_PATH=$WORKSPACE_BASE "
                             "-p 3000:3000 img")


@pytest.mark.parametrize(("text", "said"), [
    ("docker run -e X=$(curl -s http://x) -p 3000:3000 img", "$(curl -s http://x): the harness runs no command"),
    ("docker run -e X=$(date -s 2020-01-01) -p 3000:3000 img", "$(date -s 2020-01-01): the harness runs no command"),
    ("rm -rf ~/x\ndocker run -p 3000:3000 img", "line 1: 'rm -rf ~/x': expected the docker run line"),
    ("export A=\"$(pwd)/w\ndocker run -p 3000:3000 img", "does not parse as a shell would"),
    ("docker run -p 3000:3000 a\ndocker run -p 3000:3000 b", "line 2: a second docker run line"),
])
def test_a_script_that_would_run_anything_else_is_refused_in_one_line(tmp_path: Path, text: str, said: str) -> None:
    write(tmp_path, "run.sh", text)
    with pytest.raises(InputError) as e:
        deployments.load("s", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None)
    assert said in str(e.value) and str(tmp_path / "run.sh") in str(e.value) and "\n" not in str(e.value)


def test_the_reader_runs_a_substitutions_command_only_through_what_it_is_handed(tmp_path: Path) -> None:
    """The reader runs nothing itself: `$(id -u)` is what the runner it was handed printed,
    with the line's variables as its environment; without one, that `$(...)` is bad input
    (`$(pwd)` needs none: it is the line's folder)."""
    write(tmp_path, "run.sh", "export A=1\ndocker run -e U=$(id -u) -e W=$(pwd) -p 3000:3000 img\n")
    asked: list[tuple[list[str], dict[str, str]]] = []

    def run(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        asked.append((argv, env))
        return 0, "4242\n", ""

    d = deployments.load("s", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None, run)
    assert d.service.environment["U"] == "4242" and d.service.environment["W"] == str(tmp_path.resolve())
    assert [argv for argv, _ in asked] == [["id", "-u"]] and asked[0][1]["A"] == "1"
    with pytest.raises(InputError, match=r"\$\(id -u\): this reading of your line was given nothing to run it with"):
        deployments.load("s", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None)


@pytest.mark.parametrize(("text", "command", "said"), [
    ("docker run -p 3000:3000 img | tee log", None, "docker run's output, piped to `tee log`, is not part"),
    ("sudo docker run -p 3000:3000 img python -c 'print(1)' |& tee -a log | grep x", ("python", "-c", "print(1)"),
     "piped to `tee -a log | grep x`, is not part of the deployment"),
    ("docker run -p 3000:3000 img>oh.log 2>&1 &", None, "docker run's own output, redirected (`>oh.log 2>&1`), is"),
    ("docker run -p 3000:3000 \\\n  img &>> oh.log", None, "redirected (`&>> oh.log`), is not part"),
    ("docker run -p 3000:3000 img || echo 'it failed'", None, "`echo 'it failed'`, run only if docker run fails,"),
    ("docker run -p 3000:3000 img < /dev/null", None, "`< /dev/null`: input docker run does not pass to the container"),
    ("echo y | docker run -p 3000:3000 img", None, "`echo y |`: input docker run does not pass"),
    ("docker run -p 3000:3000 img sh <<'EOF'\nrm -rf /\nEOF\n", ("sh",), "`<<'EOF'`: input docker run does not"),
    ("docker run -p 3000:3000 -e 'A=x|y;z' -e B=a#b img # our start line", None, ""),
])
def test_the_shells_operators_end_the_docker_run_command_and_what_they_drop_is_said(
        tmp_path: Path, text: str, command: tuple[str, ...] | None, said: str) -> None:
    """A shell ends `docker run ... IMG | tee log` before the `|`: the pipe, a redirection of
    docker's own output and a command run only if it fails are no part of the container."""
    write(tmp_path, "run.sh", text)
    d = deployments.load("s", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None)
    assert d.service.image == "img" and d.service.command == command
    assert d.service.environment == ({"A": "x|y;z", "B": "a#b"} if not said else {})  # `#` inside a word is text
    assert all(said in n for n in d.service.notes[:1]) and len(d.service.notes) == (1 if said else 0)
    # the fix edits the docker run command in place and keeps what is around it
    fixed = fixes_line(d)
    assert fixed.replace(" -e DOCKER_HOST_ADDR=172.17.0.1", "", 1) == text.split(" # ")[0].rstrip("\n")
    placed = d.launch(generations.V1, image="img", env={}, host_port=62000, site=Site(tmp_path))
    assert all(n in placed.placement for n in d.service.notes)


@pytest.mark.parametrize(("text", "said"), [
    ("docker run -it -p 3000:3000 img < cmds.txt", "line 1: `< cmds.txt`: input the container reads (-i)"),
    ("docker run -i -p 3000:3000 img sh <<EOF\necho hi\nEOF", "`<<EOF`: input the container reads (-i)"),
    ("echo y | docker run -i -p 3000:3000 img", "`echo y |`: input the container reads (-i)"),
    ("mkdir -p ws || docker run -p 3000:3000 img", "line 1: `||`: what follows runs only if `mkdir -p ws` fails"),
    ("docker run -p 3000:3000 img | xargs echo", "line 1: `|`: docker run's output piped to `xargs echo`"),
    ("docker run -p 3000:3000 img || docker start oh", "`||`: `docker start oh` runs if docker run fails"),
    ("export A=1 & docker run -p 3000:3000 img", "`&`: `export A=1` runs in the background"),
    ("echo y | cat | docker run -p 3000:3000 img", "line 1: `|`: a pipe between commands"),
    ("docker run -p 3000:3000 --env-file <(env) img", "`<(env)`: a process substitution runs a command"),
    ("docker run -p 3000:3000 img > >(tee log)", "`>(tee log)`: a process substitution"),
    ("(docker run -p 3000:3000 img)", "line 1: `(`: a subshell, group or case"),
    ("docker run -p 3000:3000 img |", "`|`: does not parse as a shell would (no command after it)"),
    ("docker run -p 3000:3000 img <<EOF\nno end", "`<<EOF`: the here-document never ends"),
    ("docker run -p 3000:3000 img | tee log && docker network connect n oh", "'docker network connect n oh'"),
])
def test_an_operator_that_would_change_the_deployment_is_refused_naming_it(tmp_path: Path, text: str,
                                                                          said: str) -> None:
    write(tmp_path, "run.sh", text)
    with pytest.raises(InputError) as e:
        deployments.load("s", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None)
    assert said in str(e.value) and str(tmp_path / "run.sh") in str(e.value) and "\n" not in str(e.value)


def test_the_container_options_users_set_are_honoured_as_written(tmp_path: Path) -> None:
    """hostname, privileged, capabilities, groups and security options (a stack on a NAS, a
    line run with sudo --privileged): set on the cell's app as written, in its line too;
    depends_on and build are accepted and the cell says what it does not do of them."""
    from harness.host.containers import app_container

    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    build: .\n    hostname: openhands\n"
                                   "    privileged: true\n    cap_add: [NET_ADMIN]\n    group_add: ['998']\n"
                                   "    security_opt: ['apparmor:unconfined']\n    depends_on: [ollama]\n"
                                   "    healthcheck: {test: [CMD, curl, -f, http://localhost:3000]}\n"
                                   "    ports: ['3000:3000']\n  ollama:\n    image: ollama/ollama\n")
    d = deployments.load("nas", {"compose": "compose.yml", "service": "oh"}, str(matrix_with(tmp_path, "")), None)
    run = ("sudo docker run --privileged -h oh --cap-add=NET_ADMIN --group-add 998 "
           "--security-opt apparmor:unconfined -p 3000:3000 img")
    line = deployments.load("sudo", {"docker_run": run}, str(tmp_path / "m.toml"), None)
    want = (("--hostname", "openhands"), ("--privileged", ""), ("--cap-add", "NET_ADMIN"), ("--group-add", "998"),
            ("--security-opt", "apparmor:unconfined"))
    assert d.service.flags == want and line.service.flags == (("--hostname", "oh"), *want[1:])
    lau = d.launch(generations.V0, image="app", env={}, host_port=61400, networks={"default": "n"}, site=Site(tmp_path))
    assert "--hostname openhands --privileged --cap-add NET_ADMIN --group-add 998" in lau.docker_run()
    assert any(n.startswith("depends_on: the services it depends on (ollama) are not started") for n in lau.placement)
    assert any(n.startswith("build: its build is not run") for n in lau.placement)
    kwargs = app_container("app", lau.options(placed=True), [], {})._kwargs
    got = [kwargs[k] for k in ("hostname", "privileged", "cap_add", "group_add", "security_opt")]
    assert got == ["openhands", True, ["NET_ADMIN"], ["998"], ["apparmor:unconfined"]]


def test_a_windows_host_path_is_a_bind_mount_like_any_other(tmp_path: Path) -> None:
    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n"
                                   "    volumes: ['C:\\OpenHands:/.openhands']\n")
    d = deployments.load("win", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    [v] = d.service.volumes
    assert (v.source, v.target, v.kind) == ("C:\\OpenHands", "/.openhands", "bind")


def test_a_fixed_subnet_is_the_cells_own_and_what_names_its_addresses_moves(tmp_path: Path) -> None:
    """A NAS's stack: its network on 172.22.0.0/24 and host.docker.internal pinned to that
    network's gateway. Two cells cannot share one subnet: the daemon picks the cell's, and the
    gateway (and any address of the subnet a setting names) follows."""
    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n    networks: [oh]\n"
                                   "    extra_hosts: ['host.docker.internal:172.22.0.1', 'lan:192.168.1.5']\n"
                                   "    environment: {SANDBOX_API_HOSTNAME: 172.22.0.1, OTHER: 172.22.0.77:8000}\n"
                                   "networks:\n  oh:\n    ipam:\n      driver: default\n      config:\n"
                                   "        - subnet: 172.22.0.0/24\n          gateway: 172.22.0.1\n")
    d = deployments.load("nas", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    assert (d.service.networks[0].subnet, d.service.networks[0].gateway) == ("172.22.0.0/24", "172.22.0.1")
    lau = d.launch(generations.V0, image="app", env={}, host_port=61500, networks={"oh": "cell-oh"},
                   site=Site(tmp_path))
    placed = [v for f, v in lau.options(placed=True) if f == "--add-host"]
    assert placed == ["host.docker.internal:172.30.0.1", "lan:192.168.1.5"]
    assert next(v for f, v in lau.options(placed=False) if f == "--add-host") == "host.docker.internal:172.22.0.1"
    env = lau.container_env()
    assert (env["SANDBOX_API_HOSTNAME"], env["OTHER"]) == ("172.30.0.1", "172.30.0.77:8000")
    assert any("subnet 172.22.0.0/24 (gateway 172.22.0.1) is 172.30.0.0/16" in n for n in lau.placement)
    assert lau.docker_run().startswith("docker network create --subnet 172.22.0.0/24 --gateway 172.22.0.1 oh && ")
    for bad, said in (("ipam: {driver: macvlan}", "only the default IPAM driver"),
                      ("ipam: {config: [{subnet: 10.0.0.0/33}]}", "ipam.config")):
        write(tmp_path, "compose.yml", f"services:\n  oh:\n    image: x\n    ports: ['3000:3000']\n"
                                       f"    networks: [oh]\nnetworks:\n  oh: {{{bad}}}\n")
        with pytest.raises(InputError, match=said):
            deployments.load("nas", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)


def test_an_app_behind_a_proxy_is_reached_at_its_address_on_its_network(tmp_path: Path) -> None:
    """No port published (a reverse proxy on the stack's network reaches the app): the harness
    reaches it as the proxy does, and says so; it is no input error."""
    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x\n    networks: [proxy]\nnetworks:\n  proxy: {}\n")
    d = deployments.load("behind", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    lau = d.launch(generations.V1, image="app", env={}, host_port=61600, networks={"proxy": "cell-proxy"},
                   site=Site(tmp_path))
    assert lau.reach_at == "cell-proxy" and not [v for f, v in lau.options(placed=True) if f == "-p"]
    assert any("published nowhere: the harness reaches its API at the app's address on network proxy" in n
               for n in lau.placement)
    line = deployments.load("l", {"docker_run": "docker run img"}, str(tmp_path / "m.toml"), None)
    assert line.launch(generations.V0, image="a", env={}, host_port=61601, site=Site(tmp_path)).reach_at == "bridge"


def test_host_paths_openhands_mounts_into_its_runtime_are_the_cells_folders(tmp_path: Path) -> None:
    """SANDBOX_VOLUMES (and a 0.x workspace path with no mount of its own) name folders of the
    user's that the runtime, not the app, mounts: the agent would write there. Each is a folder
    of the cell's; one the app mounts too is the same folder."""
    write(tmp_path, "run.sh", "docker run -p 3000:3000 -v /srv/ws:/opt/workspace_base "
                              "-e SANDBOX_VOLUMES=/home/u/project:/workspace:rw,/srv/ws/data:/data:ro,./rel:/r "
                              "-e WORKSPACE_MOUNT_PATH=/home/u/other img")
    d = deployments.load("vols", {"docker_run_file": "run.sh"}, str(tmp_path / "m.toml"), None)
    site = Site(tmp_path)
    lau = d.launch(generations.V0, image="a", env={}, host_port=61700, site=site)
    env = lau.container_env()
    ws, project, other = site.made
    assert env["SANDBOX_VOLUMES"] == f"{project}:/workspace:rw,{ws}/data:/data:ro,./rel:/r"
    assert env["WORKSPACE_MOUNT_PATH"] == other
    assert "SANDBOX_VOLUMES=/home/u/project:/workspace:rw" in lau.docker_run()  # the line people read: as written
    assert any(n.startswith("SANDBOX_VOLUMES: /home/u/project, which OpenHands mounts into its runtime") for n in
               lau.placement)


def test_a_deployment_gets_the_daemon_its_line_gives_and_no_other(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No socket in the line: none on the cell's container, none in the line shown, and no
    DOCKER_HOST on a tcp:// daemon either; a socket mounted elsewhere is the cell daemon's, there."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    bare = deployments.load("bare", {"docker_run": "docker run --rm -e LLM_MODEL=m -p 3000:3000 img:0.62"},
                            str(tmp_path / "m.toml"), None)
    lau = bare.launch(generations.V0, image="app:0.62", env={}, host_port=61120, site=Site(tmp_path))
    assert not any(f == "-v" for f, _ in lau.options(placed=True)) and "docker.sock" not in lau.docker_run()
    assert lau.daemon() is None and not bare.service.mounts_socket()
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.213.0.2:2375")
    lau = bare.launch(generations.V0, image="app:0.62", env={}, host_port=61120, site=Site(tmp_path))
    assert "DOCKER_HOST" not in lau.container_env() and lau.daemon() is None

    line = "docker run -v /run/docker.sock:/tmp/d.sock -e DOCKER_HOST=unix:///tmp/d.sock -p 3000:3000 img:0.62"
    elsewhere = deployments.load("elsewhere", {"docker_run": line}, str(tmp_path / "m.toml"), None)
    lau = elsewhere.launch(generations.V0, image="app:0.62", env={}, host_port=61121, site=Site(tmp_path))
    assert lau.container_env()["DOCKER_HOST"] == "tcp://10.213.0.2:2375"  # a tcp daemon is named, not mounted
    assert lau.daemon() == "DOCKER_HOST=tcp://10.213.0.2:2375"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/second/docker.sock")
    lau = elsewhere.launch(generations.V0, image="app:0.62", env={}, host_port=61121, site=Site(tmp_path))
    assert [v for f, v in lau.options(placed=True) if f == "-v"] == ["/run/second/docker.sock:/tmp/d.sock"]
    assert lau.container_env()["DOCKER_HOST"] == "unix:///tmp/d.sock"  # as written
    assert "-v /run/docker.sock:/tmp/d.sock" in lau.docker_run()  # the line shown: as written
    assert any("the socket of the daemon the cell runs on" in n for n in lau.placement)


HEADLESS = ('docker run --rm -e LLM_API_KEY=sk-x -e LLM_MODEL=m docker.openhands.dev/openhands/openhands:0.62 '
            'python -m openhands.core.main -t "Create a file"')


def test_a_deployments_cells_are_the_entry_point_its_line_runs_and_no_other(tmp_path: Path) -> None:
    write(tmp_path, "m.toml", f'[run]\nentrypoints = ["api", "headless"]\n[[targets]]\ntag = "0.62"\n'
                              f"[deployments.job]\ndocker_run = '{HEADLESS}'\nown_image = false\n"
                              "[deployments.app]\ndocker_run = 'docker run -p 3000:3000 img:0.62'\nown_image = false\n"
                              "[modes.bridge]\n")
    m = matrix.load(str(tmp_path / "m.toml"))
    assert sorted(c.id for c in m.cells()) == ["0.62-app", "0.62-bridge", "0.62-bridge-headless", "0.62-job-headless"]
    cli = deployments.load("c", {"docker_run": "docker run img openhands --headless -t hi"}, str(tmp_path / "m"))
    assert cli.entrypoint == "cli"
    with pytest.raises(InputError, match=r"openhands.cli.main: V0's interactive CLI"):
        deployments.load("v0cli", {"docker_run": "docker run img python -m openhands.cli.main"}, str(tmp_path / "m"))


@pytest.mark.parametrize(("command", "argv", "said"), [
    (("python", "-m", "openhands.core.main", "-t", "Create a file", "-i", "5"),
     ["python", "-m", "openhands.core.main", "-i", "5", "-t", "T"], "your task (-t Create a file)"),
    (("python", "-m", "openhands.core.main", "--task=x"), ["python", "-m", "openhands.core.main", "-t", "T"],
     "your task (--task=x)"),
    (("python", "-m", "openhands.core.main", "-f", "task.txt"), ["python", "-m", "openhands.core.main", "-t", "T"],
     "your task (-f task.txt)"),
    (("openhands", "--headless"), ["openhands", "--headless", "-t", "T"], "the harness's task added"),
])
def test_a_users_headless_command_runs_the_harness_task_and_the_rest_as_written(
        command: tuple[str, ...], argv: list[str], said: str) -> None:
    from harness.deployments.spec import with_task

    got, words = with_task(command, "T")
    assert got == argv and words.startswith(said)


def test_a_headless_line_is_placed_with_no_api_to_reach(tmp_path: Path) -> None:
    d = deployments.load("job", {"docker_run": HEADLESS}, str(tmp_path / "m.toml"), None)
    lau = d.launch(generations.V0, image="app:0.62", env={}, host_port=61130, site=Site(tmp_path))
    assert not any("published nowhere" in n for n in lau.placement) and lau.daemon() is None
    line = lau.docker_run(frozenset({"LLM_API_KEY"}))
    assert line.endswith("app:0.62 python -m openhands.core.main -t 'Create a file'")
    assert "docker.sock" not in line and "--add-host" not in line
    host = deployments.load("h", {"docker_run": "docker run --network host img python -m openhands.core.main -t x"},
                            str(tmp_path / "m.toml"), None)  # no port of its own to move: no command of ours
    assert host.launch(generations.V0, image="a", env={}, host_port=61131, site=Site(tmp_path)).command is None


def test_publishing_the_apps_own_port_is_a_diff_and_a_line_and_the_rerun_publishes_it(tmp_path: Path) -> None:
    """publish-app-port: the mapping carried over from the app server, `3000:3000`, becomes
    `3000:8000` on Agent Canvas (the host port as written, the container port its release's)."""
    from harness.deployments.fixes import fix

    write(tmp_path, "compose.yml", "services:\n  oh:\n    image: x:0.62\n    ports:\n      - \"127.0.0.1:3000:3000\"\n"
                                   "      - '22:22'\n")
    d = deployments.load("mine", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    diff = fix(d, {}, republish=8000)
    assert '-      - "127.0.0.1:3000:3000"\n+      - "127.0.0.1:3000:8000"\n' in diff
    assert "-      - '22:22'" not in diff and "environment" not in diff  # nothing else changes
    changed = d.changed({}, republish=8000)
    assert [(p.host, p.container) for p in changed.service.ports] == [(3000, 8000), (22, 22)]
    lau = changed.launch(generations.CANVAS, image="c", env={}, host_port=61500, networks={"default": "n"},
                         site=Site(tmp_path))
    assert lau.not_published is None and ("-p", "127.0.0.1:61500:8000") in lau.options(placed=True)
    line = deployments.load("l", {"docker_run": "docker run -p 3000:3000 -v /var/run/docker.sock:/var/run/docker.sock "
                                                "img:0.62"}, str(tmp_path / "m.toml"), None)
    assert fix(line, {}, republish=8000) == \
        "docker run -p 3000:8000 -v /var/run/docker.sock:/var/run/docker.sock img:0.62"


def test_a_folder_mounted_at_its_own_path_stays_there_or_the_cell_is_not_run(tmp_path: Path) -> None:
    """Docker in Docker: a process in the container (the agent-server's conversation runtime)
    hands its own paths to the daemon, which resolves them on its host; a bind at its own path
    keeps that true, so the cell makes the folder at that very path rather than a temporary one,
    and where the folder exists already (someone's) it is not run, instead of silently moved."""
    at = tmp_path / "home" / "openhands" / ".openhands"
    write(tmp_path, "compose.yml", f"services:\n  oh:\n    image: x\n    ports: ['8000:8000']\n"
                                   f"    volumes: ['{at}:{at}', '/srv/work:/projects']\n")
    d = deployments.load("dind", {"compose": "compose.yml"}, str(matrix_with(tmp_path, "")), None)
    site = Site(tmp_path)
    lau = d.launch(generations.CANVAS, image="app", env={}, host_port=61501, site=site)
    placed = [v for f, v in lau.options(placed=True) if f == "-v"]
    assert f"{at}:{at}" in placed and len(site.made) == 1  # /srv/work alone got a temporary folder
    assert any(n.startswith(f"{at} (bind, at its own path) is made on this machine") for n in lau.placement)
    at.mkdir(parents=True)
    with pytest.raises(PlacementError, match=f"{at} is mounted at its own path.*exists here"):
        d.launch(generations.CANVAS, image="app", env={}, host_port=61502, site=Site(tmp_path))
