# The oh-matrix pytest plugin: --matrix and friends, the `cell` parametrization.
pytest_plugins = ["harness.plugin"]
