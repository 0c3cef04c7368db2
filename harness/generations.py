"""The registry of OpenHands API generations: everything that differs between V0 (0.6x),
V1 (1.x) and Agent Canvas is one entry here plus one adapter module in harness/openhands/.

Adding a generation: write its adapter (`Rules` and `Client` in harness/openhands/), add
an entry below (its app module, image recipes, who calls the LLM, callback settings,
headless support, remedies), and point `latest` at it when it becomes the newest. Nothing
else branches on a generation's name; an unknown name is an error, never a default.

Data only: adapters and image recipes are named by import path and loaded when used, so
the matrix and the model never import docker or httpx through this module.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.errors import InputError


@dataclass(frozen=True)
class Tools:
    """The tool names the generation's agent offers the LLM, for the scripted LLM's answers."""

    bash: str
    edit: str
    finish: str = "finish"
    ipython: str | None = None  # a tool that runs a cell of Python in IPython, if the agent has one


# What a task may need (`needs` in a task file, docs/task-files.md): a generation's agent has
# some, an image may lack some (ImageSet.lacks), and some are never available here.
CAPABILITIES: dict[str, str] = {
    "ipython": "an IPython tool the agent can call",
    "browser": "a browser the agent can drive in the runtime",
    "internet": "the runtime reaches the internet",
}
NEVER_HERE: dict[str, str] = {
    "internet": ("oh-matrix runs tasks offline: a task verdict must not depend on the internet "
                 "(the scripted LLM and the git server sit on the runtime's loopback)"),
}


@dataclass(frozen=True)
class Before:
    """What releases older than `first` have instead of the newest releases' facts: the
    Generation's fields that differ there, and where in those releases' code it is read."""

    first: tuple[int, ...]
    changes: dict[str, Any]
    source: str


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """(1, 5, 0) of a release's version; None for one that is no MAJOR.MINOR[.PATCH]
    (an own image's `main`), which is taken to have the newest facts."""
    if not version:
        return None
    try:
        return tuple(int(x) for x in version.split(".")[:3])
    except ValueError:
        return None


@dataclass(frozen=True)
class Generation:
    name: str
    title: str
    majors: tuple[int, ...]  # release majors it covers (0 -> 0.x)
    app_module: str  # what the app image's uvicorn serves
    health_path: str  # answers once the app's API is up
    rules: str  # "module:Class" implementing harness.openhands.Rules (pure)
    client: str  # "module:Class(base_url)" implementing harness.openhands.Client (its HTTP API)
    official_images: str  # "module:function(client, tag, generation) -> ImageSet"
    pypi_images: str  # "module:function(client, tag, generation, constraints, python312) -> ImageSet"
    runtime_prefix: str  # the runtime/sandbox container's name before its id
    workspace: str  # the runtime's working directory, where tasks work
    llm_caller: Literal["app", "sandbox"]  # whose network namespace calls the LLM
    tools: Tools
    # The sandbox calls the app back (webhooks, MCP): the app's port must be published
    # where the sandbox reaches it, and SANDBOX_HOST_PORT must name it.
    callback: bool = False
    # The app's setting for the host port the sandbox calls it back at, and its default.
    callback_port_env: str | None = None
    callback_port_default: int = 3000
    # The app's setting for the URL it reaches its runtime at ({port}: the runtime's host port).
    url_pattern_env: str | None = None
    # The app's setting that adds env to its sandbox (a second webhook); None: there is none.
    sandbox_env_setting: str | None = None
    # The app names its runtime at random, not after the conversation: the harness learns the
    # name from the app (V1's start task), not before.
    runtime_named_at_random: bool = False
    # How a conversation's next message reaches the app: "route" (a REST call) or "socket"
    # (the socket.io event the frontend emits).
    message_call: str = "route"
    # Where the app keeps its copy of a conversation's events: "path" (/conversation/ID/events)
    # or "query" (/events?conversation_id__eq=ID).
    app_events: str = "path"
    runtime_image_env: str | None = None  # env that tells the app its runtime image
    # The app's setting for the API key its client must send (the harness sets it); None: no key.
    api_key_env: str | None = None
    label_env: str | None = None  # env the app passes to containers.run: labels for sweeps
    # "module:function(app env) -> (uid, why)": the uid its runtime's user gets (on a rootless
    # daemon a container's uid is a subordinate uid on the host: host/rootlesskit.py user_id_on_host)
    runtime_uid: str | None = None
    host_network_env: dict[str, str] = field(default_factory=dict)  # needed in mode host
    host_network_ports: tuple[int, ...] = ()  # fixed host ports its runtime binds there
    # The oldest release whose API the adapter's facts were read from: an older one is
    # refused, never driven with a newer release's calls.
    oldest: tuple[int, ...] = (0,)
    oldest_why: str = ""
    # How the releases between `oldest` and the newest differ, oldest change last (at()).
    before: tuple[Before, ...] = ()
    # The host ports its runtime is published on (iptables' `LO:HI`); None: the kernel's
    # ephemeral range, where the app's own finder picks them.
    runtime_host_ports: str | None = None
    # The release's own clock for its runtime's boot: the env var that sets it and its default
    # (V1 marks the sandbox ERROR when /health fails after this grace).
    startup_grace_env: str | None = None
    # How its client stores the LLM settings, where releases differ (V1Client.store_settings):
    # "diff" (POST /api/v1/settings, agent_settings_diff) or "flat" (POST /api/settings)
    settings_call: str = "diff"
    startup_grace: float | None = None
    # "": a target may name it, the cells know its topology; else why its cells cannot run yet
    no_cells: str = ""
    # The agent's tools run in the app's own container (Agent Canvas): no container per
    # conversation, nothing called back across containers; the tasks' effects are read there.
    runtime_is_app: bool = False
    # The app starts containers (its runtimes) through the Docker daemon: it gets the socket
    # (or DOCKER_HOST), as documented. False: the documented command gives it none.
    starts_containers: bool = True
    app_port: int = 3000  # the port the app listens on in its container, as documented
    # The app's setting for that port (its own entrypoint reads it): needed on the host
    # network, where the harness picks the port; None: the app's command says it (app_command).
    port_env: str | None = None
    # How a target names a release of this generation besides `latest` (`canvas-1.16`): the
    # prefix; None: a bare MAJOR.MINOR[.PATCH] (the app server's releases, by their majors).
    tag_prefix: str | None = None
    # The native mode's install (no container: the release's own launcher on this machine),
    # "module:function(version, python312) -> {what the cell runs: paths}"; None: it has none.
    native_install: str | None = None
    # Its agent-server is what the SDK's DockerWorkspace starts (openhands-workspace at the
    # agent-server's version): docker-workspace callers get a cell for its targets.
    docker_workspace: bool = False
    # Its agent-server's setting that runs each conversation in a container of its own
    # (cells/conversations.py), and the home of the app container's user, under which it keeps
    # what it mounts into those containers; None: it has no such runtime.
    conversation_runtime_setting: str | None = None
    app_home: str = "/root"
    # The mode whose line is the generation's documented command: it ranks first when it
    # passes (modes.rank). The app server documents --add-host (host-gateway); Canvas does not.
    documented_mode: str = "host-gateway"
    headless_skip: str | None = None  # None: the headless entry point exists; else why not
    # "module:function(events, after) -> Turn": reads a saved trajectory (the headless run's)
    trajectory_reader: str | None = None
    replay_skip: str | None = None  # None: it replays recorded trajectories (--llm replay); else why not
    remedies: tuple[str, ...] = ()  # names in harness/remedies/table.py that apply to its cells
    latest: bool = False  # `latest` resolves to this generation today
    # The distribution whose version is the release an image holds (read from the image when
    # its labels do not say: a user's own image, images/own.py)
    release_package: str = "openhands-ai"
    # What its agent can do for a task (keys of CAPABILITIES), and why it lacks the others.
    capabilities: tuple[str, ...] = ()
    lacks_why: dict[str, str] = field(default_factory=dict)

    def at(self, version: str | None) -> Generation:
        """This generation as release `version` has it: every `before` entry that release is
        older than applied, the oldest change last, so it wins where two name one field."""
        mine = version_tuple(version)
        if mine is None:
            return self
        changes: dict[str, Any] = {}
        for b in sorted(self.before, key=lambda b: b.first, reverse=True):
            if mine < b.first:
                changes.update(b.changes)
        return replace(self, **changes) if changes else self

    def differences(self, version: str | None) -> list[str]:
        """What release `version` has otherwise than the newest, each with its source."""
        mine = version_tuple(version)
        return [f"before {'.'.join(map(str, b.first))}: {b.source}" for b in self.before
                if mine is not None and mine < b.first]

    def grace(self, env: dict[str, str]) -> float | None:
        """The startup grace a cell's app runs with: its env's value, else the release default."""
        if self.startup_grace_env and env.get(self.startup_grace_env):
            try:
                return float(env[self.startup_grace_env])
            except ValueError:
                return self.startup_grace
        return self.startup_grace

    def load(self, path: str) -> Any:
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)


V0 = Generation(
    name="v0",
    title="V0 (0.6x): /api/conversations, action-execution runtime the app polls",
    majors=(0,),
    oldest=(0, 50, 0),
    oldest_why=("the V0 adapter's calls were compared with the wheels of openhands-ai 0.50.0 to 0.62.0; "
                "an older release's API was not read"),
    before=(
        Before((0, 59, 0), {"message_call": "socket"},
               "a message to a running conversation is the socket.io event oh_user_action, as the frontend "
               "sends it (openhands/server/listen_socket.py): POST /api/conversations/ID/message "
               "(routes/conversation.py add_message) first ships in 0.59.0"),
    ),
    app_module="openhands.server.listen:app",
    health_path="/api/options/config",
    rules="harness.openhands.v0:V0Rules",
    client="harness.openhands.v0:V0Client",
    official_images="harness.images.official:pull_v0",
    pypi_images="harness.images.pypi:build_v0",
    runtime_prefix="openhands-runtime-",
    workspace="/workspace",
    llm_caller="app",
    tools=Tools(bash="execute_bash", edit="str_replace_editor", ipython="execute_ipython_cell"),
    runtime_image_env="SANDBOX_RUNTIME_CONTAINER_IMAGE",
    label_env="SANDBOX_DOCKER_RUNTIME_KWARGS",
    runtime_uid="harness.openhands.v0:runtime_uid",
    # DockerRuntime's execution-server range (openhands/runtime/impl/docker/docker_runtime.py L45-54)
    runtime_host_ports="30000:39999",
    trajectory_reader="harness.openhands.v0:turn_from_events",
    remedies=("publish-app-port", "mount-docker-socket", "add-host-gateway", "docker-host-addr", "host-network-trio",
              "sandbox-network", "own-network",
              "bind-all-addresses", "no-proxy", "firewall-accept", "rootless-host-alias"),
    # CodeActAgent 0.62 offers execute_ipython_cell (AgentConfig.enable_jupyter, default True)
    # and browser (enable_browsing, default True): codeact_agent.py _get_tools.
    capabilities=("ipython", "browser"),
)

V1 = Generation(
    name="v1",
    title="V1 (1.x): /api/v1/app-conversations, agent-server sandbox that calls the app back",
    majors=(1,),
    oldest=(1, 0, 0),
    oldest_why=("the V1 adapter's calls were compared with the wheels of openhands-ai 1.0.0 to 1.11.0"),
    before=(
        Before((1, 8, 0), {"app_module": "openhands.server.listen:app"},
               "the app is openhands.server.listen:app, which serves /api/v1 beside the V0 routes "
               "(openhands/server/app.py includes app_server.v1_router); openhands/app_server/app.py first "
               "ships in 1.8.0"),
        Before((1, 7, 0), {"settings_call": "flat"},
               "the LLM settings are POST /api/settings with llm_model, llm_api_key, llm_base_url "
               "(openhands/server/routes/settings.py); POST /api/v1/settings first ships in 1.7.0 "
               "(openhands/app_server/settings/settings_router.py)"),
        Before((1, 6, 0), {"host_network_env": {"SANDBOX_USE_HOST_NETWORK": "true"},
                           "host_network_ports": (8000, 8001, 8011)},
               "the sandbox joins the host network with SANDBOX_USE_HOST_NETWORK (1.3.0-1.5.0, "
               "DockerSandboxServiceInjector.use_host_network) on ports 8000, 8001, 8011; "
               "AGENT_SERVER_USE_HOST_NETWORK and port 8012 first in 1.6.0 "
               "(openhands/app_server/sandbox/docker_sandbox_service.py)"),
        Before((1, 4, 0), {"startup_grace_env": None},
               "the sandbox's startup grace is a fixed 15 s: SANDBOX_STARTUP_GRACE_SECONDS is first read in "
               "1.4.0 (openhands/app_server/config.py)"),
        Before((1, 3, 0), {"host_network_env": {}, "host_network_ports": ()},
               "the sandbox cannot join the host network: use_host_network first ships in 1.3.0 "
               "(openhands/app_server/sandbox/docker_sandbox_service.py)"),
        Before((1, 2, 0), {"callback_port_env": None, "url_pattern_env": None, "runtime_named_at_random": True,
                           "app_events": "query", "startup_grace": None},
               "the sandbox is named oh-agent-server-<16 random bytes>, not after the conversation (the start "
               "task's sandbox_id names it); no setting moves the port the sandbox calls the app back at "
               "(host.docker.internal:3000) or the URL the app reaches the sandbox at: SANDBOX_HOST_PORT and "
               "SANDBOX_CONTAINER_URL_PATTERN are not read, and any OH_SANDBOX_* setting makes the app exit "
               "before its API answers (its env parser builds the abstract SandboxServiceInjector: \"Can't "
               "instantiate abstract class\", seen on 1.0.0); the sandbox gets no "
               "host.docker.internal:host-gateway entry; there is no startup grace (a start fails only after "
               "sandbox_startup_timeout, 120 s); the app's events are /api/v1/events/search?conversation_id__eq= "
               "(openhands/app_server/sandbox/docker_sandbox_service.py start_sandbox, config.py "
               "config_from_env, event/event_router.py of 1.0.0 and 1.1.0; extra_hosts and the legacy "
               "settings first ship in 1.2.0)"),
        Before((1, 1, 0), {"sandbox_env_setting": None},
               "OH_AGENT_SERVER_ENV is not read, so no second webhook can be added: the sandbox's one webhook is "
               "host.docker.internal (sandbox_spec_service.get_agent_server_env first ships in 1.1.0)"),
    ),
    app_module="openhands.app_server.app:app",
    health_path="/health",
    rules="harness.openhands.v1:V1Rules",
    client="harness.openhands.v1:V1Client",
    official_images="harness.images.official:pull_v1",
    pypi_images="harness.images.pypi:build_v1",
    runtime_prefix="oh-agent-server-",
    workspace="/workspace/project",
    llm_caller="sandbox",
    tools=Tools(bash="terminal", edit="file_editor"),
    callback=True,
    callback_port_env="SANDBOX_HOST_PORT",  # app_server/sandbox/docker_sandbox_service.py, default 3000
    url_pattern_env="SANDBOX_CONTAINER_URL_PATTERN",  # app_server/config.py, default http://localhost:{port}
    sandbox_env_setting="OH_AGENT_SERVER_ENV",  # sandbox_spec_service.get_agent_server_env (JSON)
    # PR #12445: the sandbox joins the host network on fixed ports 8000/8001/8011/8012.
    host_network_env={"AGENT_SERVER_USE_HOST_NETWORK": "true"},
    host_network_ports=(8000, 8001, 8011, 8012),
    startup_grace_env="SANDBOX_STARTUP_GRACE_SECONDS",  # OpenHands' app_server/sandbox/docker_sandbox_service.py
    startup_grace=15.0,
    headless_skip=("the headless entry point is V0's `python -m openhands.core.main`; 1.x ships its CLI "
                   "as a separate package"),
    replay_skip="1.x has no replay of a recorded trajectory (V0's replay_json): run its tasks with an LLM",
    remedies=("publish-app-port", "mount-docker-socket", "add-host-gateway", "no-proxy", "sandbox-no-proxy",
              "v1-url-pattern",
              "v1-startup-grace",
              "v1-web-url", "v1-extra-webhook", "v1-callback-urls", "v1-published-port", "publish-on-gateway",
              "v1-hosts-entry", "sandbox-network",
              "firewall-accept", "rootless-host-alias"),
    # The SDK agent's default tools (openhands-tools 1.34.0, tools/preset/default.py):
    # terminal, file_editor, task_tracker and the browser tool set; no IPython tool.
    capabilities=("browser",),
    lacks_why={"ipython": ("the V1 SDK agent has no IPython tool (openhands-tools 1.34.0 default tools: "
                           "terminal, file_editor, task_tracker, browser)")},
)

CANVAS = Generation(
    name="canvas",
    title="Agent Canvas (npm @openhands/agent-canvas 1.x): an ingress in front of the agent-server, one container",
    # Canvas 1.x shares its numbers with the app server's 1.x (docs/canvas.md, section 1):
    # a tag's major never picks it; a target names it.
    majors=(),
    oldest=(1, 13, 0),
    oldest_why=("the Canvas adapter's calls were read from 1.16.0 (agent-server 1.44.0) and 1.20.0 (1.49.1), and "
                "run against 1.13.0 (1.42.1), 1.16.0 and 1.20.0"),
    app_module="openhands.agent_server.api:api",
    health_path="/ready",  # through the ingress: 200 once the agent-server has initialised
    rules="harness.openhands.canvas:CanvasRules",
    client="harness.openhands.canvas:CanvasClient",
    official_images="harness.images.canvas:pull_official",
    pypi_images="harness.images.canvas:build_pypi",
    native_install="harness.images.canvas:native_install",  # npx @openhands/agent-canvas@V (docs/canvas.md)
    docker_workspace=True,  # its pinned agent-server (ImageSet.agent_server_image), as a CI job starts it
    conversation_runtime_setting="OH_CONVERSATION_RUNTIME",  # agent_server/config.py (1.49.1 on)
    app_home="/home/openhands",  # the image's user openhands (docker/Dockerfile)
    # No container per conversation: the runtime is the app's own container. "/" begins no
    # container's name, so nothing is ever taken for a Canvas runtime by its name.
    runtime_prefix="/",
    workspace="/projects",  # the image's volume for user code (docker/Dockerfile, README's docker run)
    llm_caller="app",  # the agent-server inside the app container calls the LLM
    tools=Tools(bash="terminal", edit="file_editor"),
    api_key_env="LOCAL_BACKEND_API_KEY",  # docker/entrypoint.sh: the stack's one key (X-Session-API-Key)
    runtime_is_app=True,
    starts_containers=False,  # the documented docker run mounts no socket (README 1.16.0 lines 95-99)
    app_port=8000,  # config/defaults.json ports.proxy: the ingress, EXPOSE 8000
    port_env="PORT",  # docker/entrypoint.sh: the ingress listens on $PORT
    # On the host network the agent-server and automation bind these on the host itself
    # (AGENT_SERVER_PORT, AUTOMATION_PORT defaults): one such cell at a time.
    host_network_ports=(18000, 18001),
    tag_prefix="canvas-",
    remedies=("publish-app-port", "uv-exclude-newer", "outer-on-host"),
    documented_mode="bridge",  # `docker run -it --rm -p 8000:8000 ...`: the default bridge, no --add-host
    latest=True,  # what OpenHands' installation page installs today (docs/canvas.md, section 1)
    headless_skip="Agent Canvas has no headless entry point: its CLI is the separate openhands package",
    replay_skip="the agent-server has no replay of a recorded trajectory: run its tasks with an LLM",
    capabilities=(),
    lacks_why={"ipython": "the SDK agent has no IPython tool (openhands-tools 1.44.0 default tools)",
               "browser": ("the Canvas client asks for terminal, file_editor and task_tracker only, and the "
                           "offline image has no Chromium")},
)

# The agent-server alone, as a backend people run in a container of its own and register in
# Agent Canvas by URL and key, or drive with the SDK (`ghcr.io/openhands/agent-server:V-python`;
# docs/backends.md). Its API is the one Canvas's ingress fronts, at the server itself; its
# targets are users' own lines and files naming that image (deployments), not tags.
AGENT_SERVER = Generation(
    name="agent-server-only",
    title="the agent-server alone (ghcr.io/openhands/agent-server), a backend reached by URL and key",
    majors=(),
    oldest=(1, 34, 0),
    oldest_why="the adapter's calls are Agent Canvas's, read from agent-server 1.44.0 and 1.49.1 and run against "
               "1.34.0 and 1.49.1",
    app_module="openhands.agent_server.api:api",
    health_path="/ready",  # agent_server/api.py: 200 once initialised, 503 before
    rules="harness.openhands.canvas:AgentServerRules",
    client="harness.openhands.canvas:CanvasClient",
    official_images="harness.images.canvas:no_release_images",
    pypi_images="harness.images.canvas:no_release_images",
    runtime_prefix="/",
    workspace="/workspace/project",  # the image's WORKDIR, owned by its user (agent_server/docker/Dockerfile)
    llm_caller="app",
    tools=Tools(bash="terminal", edit="file_editor"),
    api_key_env="SESSION_API_KEY",  # agent_server/config.py: V1_SESSION_API_KEY_ENV
    runtime_is_app=True,
    starts_containers=False,
    app_port=8000,  # the image's EXPOSE and the server's default --port
    conversation_runtime_setting="OH_CONVERSATION_RUNTIME",
    app_home="/home/openhands",  # the image's user openhands (uid 10001)
    remedies=("session-key",),
    no_cells="name it by a deployment of its image (docs/backends.md): its releases are the SDK's, not a tag here",
    capabilities=(),
    lacks_why=CANVAS.lacks_why,
    release_package="openhands-agent-server",
    replay_skip=CANVAS.replay_skip,
    headless_skip="the agent-server alone has no headless entry point: drive it through its API",
)

GENERATIONS: dict[str, Generation] = {g.name: g for g in (V0, V1, CANVAS, AGENT_SERVER)}


def newest() -> Generation:
    """The generation `latest` names today."""
    return next(g for g in GENERATIONS.values() if g.latest)


def app_server_newest() -> Generation:
    """The app server's newest generation: what the app server's own `latest` image (and a
    deployment naming it, or `main`) is."""
    return max((g for g in GENERATIONS.values() if g.majors), key=lambda g: max(g.majors))


def for_image(image: str) -> Generation | None:
    """The generation an image's repository names by itself (Agent Canvas's, the
    agent-server's); None: the tag decides."""
    repo = image.rsplit("/", 1)[-1].partition(":")[0].partition("@")[0]
    return {"agent-canvas": CANVAS, "agent-server": AGENT_SERVER}.get(repo)
_TAG = re.compile(r"(\d+)\.\d+(?:\.\d+)?")


def get(name: str) -> Generation:
    try:
        return GENERATIONS[name]
    except KeyError:
        raise InputError(f"unknown API generation {name!r} (known: {', '.join(GENERATIONS)})") from None


def for_tag(tag: str) -> Generation:
    """The generation a release tag (`0.62`, `1.11.0`, `latest`, `latest-2`, `canvas-1.16`)
    belongs to: `latest[-N]` is the newest product's; a bare number the app server's."""
    if tag == "latest" or tag.startswith("latest-"):
        return newest()
    for g in GENERATIONS.values():
        if g.tag_prefix and tag.startswith(g.tag_prefix):
            return g
    m = _TAG.match(tag)
    major = int(m.group(1)) if m else -1
    for g in GENERATIONS.values():
        if major in g.majors:
            given = version_tuple(tag) or ()
            if given < g.oldest[:len(given)]:
                raise InputError(f"tag {tag!r}: older than {'.'.join(map(str, g.oldest))}, the oldest release "
                                 f"the {g.name} adapter knows: {g.oldest_why}")
            return g
    raise InputError(f"tag {tag!r}: no API generation covers major version {major} "
                     f"(known: {', '.join(f'{g.name} {g.majors}' for g in GENERATIONS.values())})")
