"""The embedded broker: kombu's filesystem transport with atomic puts and gets.

kombu's filesystem transport creates a message file and only then locks and writes it, while
its reader renames files away without looking at locks: a reader can take a file that is still
empty, fail to decode it and bring the worker down (seen here: JSONDecodeError, "Unrecoverable
error"). And without ``store_processed`` the reader moves the file to the system temp folder,
which may be another filesystem — a copy, so two workers may both get the message. Here a
message is written under a name readers skip and renamed into the queue folder when complete,
and a reader claims it by renaming it into the processed folder beside it (same filesystem:
exactly one reader wins), reads it, and deletes it. The exchange tables get the same treatment.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable
from time import monotonic
from typing import Any

from queue import Empty

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

__all__ = ["Transport"]


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".partial"  # readers take only names ending in ".<queue>.msg"
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


    def _get(self, queue: str) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:  # another worker took it first
                continue
            try:
                with open(claimed, "rb") as fh:
                    payload = fh.read()
                os.remove(claimed)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {claimed!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()


    # The exchange tables in the control folder: kombu truncates and rewrites them in place, so
    # a process declaring its queues could read an empty table and crash (seen in tests). Here
    # updates are serialised by a lock file and land by rename; reads need no lock.

    def get_table(self, exchange: str) -> list[Any]:
        try:
            data = self._exchange_file(exchange).read_bytes()
        except FileNotFoundError:
            return []
        return [filesystem.exchange_queue_t(*q) for q in loads(bytes_to_str(data))]

    def _update_table(self, exchange: str, change: Callable[[list[Any]], list[Any]]) -> None:
        table = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        with open(table.with_name(table.name + ".lock"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            queues = self.get_table(exchange)
            updated = change(queues)
            if updated != queues:
                partial = table.with_name(table.name + ".partial")
                partial.write_bytes(str_to_bytes(dumps(updated)))
                os.replace(partial, table)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda queues: queues if entry in queues else [entry, *queues])

    def _delete(self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any) -> None:
        super(filesystem.Channel, self)._delete(queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda queues: [q for q in queues if q != entry])


class Transport(filesystem.Transport):
    Channel = Channel
