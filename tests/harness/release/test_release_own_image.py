"""A deployment on its own image, and fixed in itself, for real, in one run with --remedies:

- `mine` (compose, the image and runtime named through compose's interpolation) on its own
  0.62 image (cell own-mine) and on 1.11, with the upgrade view from own-mine;
- `noadd` (a `docker run` line without `--add-host`) on 1.11: host.docker.internal does
  not resolve in the app, and `--add-host host.docker.internal:host-gateway` in the user's
  own line is the fix a rerun proves;
- `gone`, whose image this daemon lacks: with the pypi backend nothing is pulled, so its
  own-image cell is `error image-unavailable` saying so, before any cell starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import clirun
import docker

from harness.host import cleanup
from harness.model import ImageSet
from harness.paths import cache_root

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = """services:
  openhands:
    image: ${APP_IMAGE}
    environment:
      SANDBOX_RUNTIME_CONTAINER_IMAGE: ${RUNTIME_IMAGE}
    ports: ["3000:3000"]
    extra_hosts: ["host.docker.internal:host-gateway"]
    volumes: ["/var/run/docker.sock:/var/run/docker.sock"]
"""
ABSENT = "oh-matrix-absent/openhands:0.62"


def test_a_deployment_on_its_own_image_and_fixed_in_itself(client: docker.DockerClient, v0_images: ImageSet,
                                                          v1_images: ImageSet, tmp_path: Path) -> None:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    (tmp_path / "matrix.toml").write_text(f"""
[run]
tasks = ["create-file"]
upgrade_from = "own-mine"
[[targets]]
tag = "1.11"
[deployments.mine]
compose = "compose.yml"
[deployments.noadd]
docker_run = "docker run -it --rm -v /var/run/docker.sock:/var/run/docker.sock -p 3000:3000 {v1_images.app_image}"
own_image = false
[deployments.gone]
docker_run = "docker run -p 3000:3000 --add-host host.docker.internal:host-gateway {ABSENT}"
""")
    env = {**os.environ, "OH_MATRIX_CACHE": str(cache_root()), "APP_IMAGE": v0_images.app_image,
           "RUNTIME_IMAGE": v0_images.runtime_image}
    out = tmp_path / "run"
    only = [a for c in ("own-mine", "1.11-mine", "1.11-noadd", "own-gone") for a in ("--only", c)]
    run = clirun.run([sys.executable, "-m", "harness.cli", "run", "--matrix", str(tmp_path / "matrix.toml"),
                      "--backend", "pypi", "--remedies", "--remedy", "add-host-gateway", "--out", str(out), "-n", "2",
                      *only],
                     cwd=ROOT, timeout=1800, env=env)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]  # noadd fails, gone errs
    data = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in data["cells"]}

    # own-mine: the user's own image and runtime, its release read from the image, tasks run
    own = cells["own-mine"]
    assert (own["tag"], own["backend"], own["api"], own["resolved_version"]) == ("own-mine", "own", "v0", "0.62.0")
    assert own["app_image"] == v0_images.app_image and own["runtime_image"] == v0_images.runtime_image
    assert own["connect"]["verdict"] == "pass", own["connect"]
    assert [t["verdict"] for t in own["tasks"]] == ["pass"]
    assert own["docker_run"].endswith(v0_images.app_image)
    assert cells["1.11-mine"]["app_image"] == v1_images.app_image
    # the upgrade view: mine as it runs today -> mine on 1.11, and no other mode
    assert [m["mode"] for m in data["upgrade"]["modes"]] == ["mine"]
    assert data["upgrade"]["before_version"] == "0.62.0"

    # noadd: no --add-host on 1.x; the user's line with the flag added is proven by its rerun
    noadd = cells["1.11-noadd"]
    assert (noadd["connect"]["cause"], noadd["connect"]["direction"]) == ("dns-unresolved", "app->runtime")
    added = next(r for r in noadd["remedies"] if r["name"] == "add-host-gateway")
    assert added["verdict"] == "pass" and added["extra_hosts"] == {"host.docker.internal": "host-gateway"}
    assert added["fix"].startswith("docker run --add-host host.docker.internal:host-gateway -it --rm")
    assert (out / "fixes" / "1.11-noadd-add-host-gateway.sh").read_text().strip().endswith(added["fix"])

    # gone: no image, no container, decided before any cell starts
    gone = cells["own-gone"]
    assert (gone["connect"]["verdict"], gone["connect"]["cause"]) == ("error", "image-unavailable")
    said = f"{ABSENT}: not on this daemon, and the pypi backend pulls nothing"
    assert gone["connect"]["evidence"][0]["text"].startswith(said)
    assert data["images"]["own-gone"]["error"].startswith(said)

    assert not client.containers.list(all=True, filters={"label": f"{cleanup.RUN_LABEL}={data['run_id']}"})
    print(json.dumps({c: (v["connect"]["verdict"], v["connect"]["cause"], v["connect"]["seconds"],
                          [(r["name"], r["verdict"]) for r in v["remedies"]]) for c, v in cells.items()}, indent=1))
