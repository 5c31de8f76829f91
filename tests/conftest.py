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


@pytest.fixture(scope="session")
def pg_server():
    """The embedded PostgreSQL, on a throw-away data directory."""
    import shutil
    import tempfile

    from cmhash.index.pg_server import embedded_server

    # Not under pytest's tmp_path: as root, PostgreSQL runs as user 'pgserver', which needs o+rx on
    # every parent directory, and each new pytest session (anyone's) resets /tmp/pytest-of-root to 0700.
    parent = Path(tempfile.mkdtemp(prefix="cmhash-pg-test-"))
    server = embedded_server(parent / "data", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path):
    """Drawn images + captions encoded by the tiny CLIP, an SCM model and a file index (see service_kit)."""
    from service_kit import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus"), tiny_clip_dir)
