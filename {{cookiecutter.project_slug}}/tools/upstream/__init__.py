"""The upstream canary: ``make upstream-check`` (check.py) and its report of overridden methods (overrides.py)."""

import os
import shutil


def find_uv() -> str | None:
    """The uv that builds the canary's virtualenv and fetches other versions' sources: ``$UV``, else uv on PATH."""
    return os.environ.get("UV") or shutil.which("uv")
