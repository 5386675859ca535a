"""Atomic, sender-proof file store.

Layout: ``<root>/<study>/<series>/<sop>.dcm``. A path component is the UID itself when it is a
well-formed UID (digits and dots, PS3.5 §9.1), otherwise ``x`` + a SHA-256 of it, so a sender
can never steer a path (``../../x`` becomes ``x3f1c…``). Files arrive in ``<root>/../incoming``
(same filesystem), are fdatasync'ed there and renamed into place; the folder is fsync'ed after
the rename so the name is durable too. Only then may a C-STORE success be sent. Concurrent
commits into one folder share that folder fsync when they can (:class:`_FolderSync`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["FileStore", "safe_component", "start_writeback"]

_UID = re.compile(r"^[0-9](?:[0-9.]{0,63})$")


def safe_component(uid: str) -> str:
    """A path component for ``uid`` that cannot escape or collide with another UID's."""
    if _UID.match(uid) and ".." not in uid:
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


class FileStore:
    """Files by study/series/instance under ``root``; writes are atomic and durable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root.parent / "incoming"
        self.root.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()
        self._folder_sync = _FolderSync()

    def path_for(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        return self.root / safe_component(study_uid) / safe_component(series_uid) / f"{safe_component(sop_uid)}.dcm"

    def commit(self, temp_path: Path, study_uid: str, series_uid: str, sop_uid: str, fd: int | None = None) -> Path:
        """Make ``temp_path`` (in ``incoming``; ``fd``: open on it, if the caller has it) durable
        at its final place and return that place."""
        final = self.path_for(study_uid, series_uid, sop_uid)
        if fd is not None:
            os.fdatasync(fd)
        else:
            fd = os.open(temp_path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        self._ensure_dir(final.parent)
        try:
            os.replace(temp_path, final)
        except FileNotFoundError:  # folder removed behind our cache (e.g. a purge): make it again
            self._known_dirs.discard(final.parent)
            self._ensure_dir(final.parent)
            os.replace(temp_path, final)
        self._folder_sync.after_rename(final.parent)
        return final

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def iter_files(self) -> Iterator[Path]:
        """Every stored instance file, for reconciliation."""
        for study in os.scandir(self.root):
            if not study.is_dir():
                continue
            for series in os.scandir(study.path):
                if not series.is_dir():
                    continue
                for entry in os.scandir(series.path):
                    if entry.name.endswith(".dcm") and entry.is_file():
                        yield Path(entry.path)

    def clear_incoming(self) -> int:
        """Delete partial files left by a crash; none of them was ever acknowledged."""
        removed = 0
        for entry in os.scandir(self.incoming):
            if entry.is_file():
                os.unlink(entry.path)
                removed += 1
        return removed

    def _ensure_dir(self, folder: Path) -> None:
        if folder in self._known_dirs:
            return
        created = []
        for parent in reversed([folder, *folder.parents]):
            if (parent == self.root or self.root in parent.parents) and not parent.exists():
                parent.mkdir(exist_ok=True)
                created.append(parent)
        for new in created:  # a new folder's name must be durable before files inside it are
            _fsync_dir(new.parent)
        self._known_dirs.add(folder)


class _Folder:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.renamed = 0  # renames into the folder so far, counted after each is done
        self.synced = 0  # renames an fsync started after has made durable
        self.syncing = False
        self.users = 0


class _FolderSync:
    """The fsync of a folder after a rename into it, shared: an fsync that starts after several
    threads' renames into one folder makes all of them durable, so a thread whose rename an
    fsync already in progress does not cover waits for it and starts the next one, for everyone
    who renamed meanwhile (a group commit, as databases do for their logs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[Path, _Folder] = {}

    def after_rename(self, folder: Path) -> None:
        """Return once the rename this thread just made into ``folder`` is durable."""
        with self._lock:
            state = self._folders.setdefault(folder, _Folder())
            state.renamed += 1
            state.users += 1
            mine = state.renamed
        try:
            with state.cond:
                while state.synced < mine:
                    if state.syncing:
                        state.cond.wait()
                        continue
                    state.syncing, covered = True, state.renamed
                    state.cond.release()
                    try:
                        _fsync_dir(folder)
                    finally:
                        state.cond.acquire()
                        state.syncing = False
                        state.cond.notify_all()
                    state.synced = max(state.synced, covered)
        finally:
            with self._lock:
                state.users -= 1
                if not state.users:
                    del self._folders[folder]


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):  # not Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int) -> None:
    """Have the kernel start writing ``fd``'s dirty pages now (Linux ``sync_file_range``), so
    that the fdatasync in :meth:`FileStore.commit` finds less left to wait for. A hint only:
    durability still comes from that fdatasync."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
