# (e) A line copied from an older README: no --add-host.
docker run -it --rm \
  -e SANDBOX_RUNTIME_CONTAINER_IMAGE=docker.openhands.dev/openhands/runtime:0.62-nikolaik \
  -v /var/run/docker.sock:/var/run/docker.sock \
  -p 3000:3000 \
  --name openhands-app \
  docker.openhands.dev/openhands/openhands:0.62
