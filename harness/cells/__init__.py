"""A cell's life: its containers and the host ports they use, the boot admission, the probes
from inside its containers, the watch and the judge that decide its verdict, and the run of
one cell with its remedies (runner)."""
