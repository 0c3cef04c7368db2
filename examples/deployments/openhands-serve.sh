# (f) `openhands serve` of the CLI openhands 1.16.0 (openhands_cli/gui_launcher.py
# launch_gui_server), as it runs it: the API entry point with the CLI's own flags. The
# release test tests/harness/test_release_cli.py checks that the CLI prints this very line.
docker run -it --rm --pull=always -e LOG_ALL_EVENTS=true -v /var/run/docker.sock:/var/run/docker.sock -v ~/.openhands:/.openhands -p 3000:3000 --add-host host.docker.internal:host-gateway --name openhands-app docker.openhands.dev/openhands/openhands:latest
