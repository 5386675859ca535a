"""Commits into one folder share its fsync, and none returns before an fsync that started after
its own rename has finished (what makes the acknowledged name durable)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from dicom_node.store import filestore
from dicom_node.store.filestore import FileStore


def test_concurrent_commits_share_folder_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = FileStore(tmp_path / "store")
    clock = time.monotonic
    renamed: dict[str, float] = {}
    syncs: list[tuple[float, float]] = []
    replace = os.replace

    def timed_replace(src: Path, dst: Path) -> None:
        replace(src, dst)
        renamed[Path(dst).stem] = clock()

    def slow_fsync(folder: Path) -> None:
        start = clock()
        time.sleep(0.02)  # a slow disk: commits pile up behind it
        syncs.append((start, clock()))

    monkeypatch.setattr(filestore.os, "replace", timed_replace)
    monkeypatch.setattr(filestore, "_fsync_dir", slow_fsync)
    returned: dict[str, float] = {}

    def commit(n: int) -> None:
        for k in range(5):
            name = f"1.2.{n}.{k}"
            temp = store.incoming / f"{name}.part"
            temp.write_bytes(b"x")
            store.commit(temp, "1.2.3", "1.2.3.4", name)
            returned[name] = clock()

    threads = [threading.Thread(target=commit, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(returned) == 30
    for name, done in returned.items():
        assert any(start >= renamed[name] and end <= done for start, end in syncs), name
    assert len(syncs) < len(returned)  # shared
    assert not store._folder_sync._folders  # nothing kept once idle


def test_a_failed_fsync_fails_its_commit_and_the_next_one_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = FileStore(tmp_path / "store")
    calls = []

    def failing_once(folder: Path) -> None:
        calls.append(folder)
        if len(calls) == 1:
            raise OSError(5, "I/O error")

    monkeypatch.setattr(filestore, "_fsync_dir", failing_once)
    for name, expect_error in (("1.1", True), ("1.2", False)):
        temp = store.incoming / f"{name}.part"
        temp.write_bytes(b"x")
        if expect_error:
            with pytest.raises(OSError):
                store.commit(temp, "1.2.3", "1.2.3.4", name)
        else:
            store.commit(temp, "1.2.3", "1.2.3.4", name)
    assert len(calls) == 2
