"""What a backend hands to the matrix: the images of one target, and where they came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Api = Literal["v0", "v1"]


@dataclass(frozen=True)
class ImageSet:
    tag: str
    resolved_version: str
    backend: str  # the backend that really produced the images: "official" or "pypi"
    api: Api
    app_image: str
    runtime_image: str
    deps_hash: str = ""
    notes: list[str] = field(default_factory=list)
    # Packages built from a git commit instead of the registry (harness/images/sources.py):
    # [{"package", "version", "repo", "commit"}]; empty for a release as PyPI has it.
    sources: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
