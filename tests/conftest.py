"""Shared test fixtures: keep each one small and offline."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny CLIP checkpoint on disk in the hub layout (max 16 tokens, 32x32 images, 16-d embeddings)."""
    from cmhash.encoders.testing import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices: one thread avoids thread start-up and spin costs on a shared 2-core machine.
    Use per module: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
