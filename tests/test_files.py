"""coursekit.files.atomic_write: the destination holds the old content or the new, never a part."""

from __future__ import annotations

import pytest

from coursekit.files import atomic_write


def test_atomic_write_writes_creates_folders_and_replaces(tmp_path):
    path = atomic_write(tmp_path / "a" / "b.txt", lambda f: f.write(b"first"))
    assert path.read_bytes() == b"first"
    atomic_write(path, lambda f: f.write(b"second"))
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.txt"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "c.bin"
    path.write_bytes(b"old")

    def half_then_fail(file):
        file.write(b"new but")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["c.bin"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_the_file_gets_the_permissions_open_would_give(tmp_path, mask):
    import os
    import stat

    before = os.umask(mask)
    try:
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"x")
        written = atomic_write(tmp_path / "atomic.bin", lambda f: f.write(b"x"))
    finally:
        os.umask(before)
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask
