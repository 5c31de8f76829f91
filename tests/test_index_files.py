"""Index files survive failed and killed builds: both parts are written first, then one rename switches.

Before: the sidecar was replaced before the index header, so a build that failed (bits not a
multiple of 8) or was killed left an index whose sidecar "does not belong", and .tmp files behind.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cmhash.index import HashIndex
from cmhash.service.stores import FileStore


def parts(n: int, bits: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    codes = np.where(rng.random((n, bits)) < 0.5, -1, 1).astype(np.int8)
    return [("image", codes, [{"id": int(i), "labels": [seed]} for i in range(n)])]


def build(out, bits: int = 16, seed: int = 0) -> FileStore:
    return FileStore.build(out, bits, "flat", {"model": f"m{seed}"}, parts(50, bits, seed))


def only_the_pair_is_left(out) -> bool:
    """The folder holds the index and the one sidecar its header names: no old sidecar, no temporary."""
    sidecar = HashIndex.read_header(out)["metadata"]["items"]["file"]
    return sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, sidecar])


def assert_is_the_old_index(out) -> None:
    store = FileStore.load(out, expect_model="m0")
    assert len(store) == 50 and store.entries[0]["labels"] == [0]


def test_a_failed_build_leaves_the_previous_index_usable(tmp_path):
    out = tmp_path / "index.npz"
    build(out)
    with pytest.raises(ValueError, match="multiple of 8"):
        FileStore.build(out, 12, "flat", {"model": "m1"}, parts(50, 12, 1))
    assert_is_the_old_index(out)
    assert only_the_pair_is_left(out)


@pytest.mark.parametrize("kill_at", ["sidecar", "index"])
def test_a_killed_build_leaves_the_previous_index_usable_and_the_next_build_cleans_up(tmp_path, kill_at):
    """SIGKILL right before the rename of the sidecar or of the index (its temporary fully written)."""
    out = tmp_path / "index.npz"
    build(out)
    child = textwrap.dedent(f"""
        import os, signal, sys
        import cmhash.io
        sys.path.insert(0, {str(__file__.rsplit('/', 1)[0])!r})
        from test_index_files import build

        real = os.replace
        def replace(src, dst):
            if str(dst).endswith({'.jsonl' if kill_at == 'sidecar' else '.npz'!r}):
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)
        cmhash.io.os.replace = replace
        build({str(out)!r}, seed=1)
    """)
    killed = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the killed run's leftovers
    assert_is_the_old_index(out)
    build(out, seed=2)
    assert FileStore.load(out, expect_model="m2").entries[0]["labels"] == [2]
    assert only_the_pair_is_left(out)
