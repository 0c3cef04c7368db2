"""oh-matrix: which OpenHands release reaches its sandbox runtime on this Docker host, and why not."""

__version__ = "0.1.0"
