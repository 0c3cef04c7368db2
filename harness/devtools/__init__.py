"""Tools for the harness's developers, not run by a matrix: the benchmark, the soak and the
recorder of replayable task trajectories."""
