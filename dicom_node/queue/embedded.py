"""The embedded broker: kombu's filesystem transport with atomic puts and gets.

kombu's filesystem transport creates a message file and only then locks and writes it, while
its reader renames files away without looking at locks: a reader can take a file that is still
empty, fail to decode it and bring the worker down (seen here: JSONDecodeError, "Unrecoverable
error"). And without ``store_processed`` the reader moves the file to the system temp folder,
which may be another filesystem — a copy, so two workers may both get the message. Here a
message is written under a name readers skip and renamed into the queue folder when complete,
and a reader claims it by renaming it into the processed folder beside it (same filesystem:
exactly one reader wins), reads it, and deletes it.
"""

from __future__ import annotations

import os
import uuid
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


class Transport(filesystem.Transport):
    Channel = Channel
