"""What a run's results become beyond the run: the history and what changed since the last
run, compare, the fleet merge, the upgrade view and the recommendation."""
