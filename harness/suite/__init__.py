"""THE matrix as pytest tests, shipped inside the package so that an installed oh-matrix
runs from any folder: `oh-matrix run` hands this folder to pytest with its own pytest.ini
(a user's ini in the current folder must not change a run), and plain `pytest --oh-matrix
FILE` with no path collects it too (plugin.pytest_configure)."""
