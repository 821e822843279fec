"""Shared test fixtures: paths to the real data beside the checkout (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DARKPOSE_SHARED", REPO.parent / "shared"))


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found: {path}")
    return path


@pytest.fixture(scope="session")
def coco_mini() -> Path:
    """Root of ../shared/data/coco-mini (annotations/, train2017/)."""
    return _require(SHARED / "data" / "coco-mini")


@pytest.fixture(scope="session")
def official_formats() -> Path:
    """Root of ../shared/data/official-formats (state_dict key files, experiment YAMLs)."""
    return _require(SHARED / "data" / "official-formats")
