"""WebSocket text frames made once and written as they are to every socket that takes them.

A server frame is unmasked (RFC 6455), so the frame of a message is the same bytes for
every client. With permessage-deflate (RFC 7692) the hub always agrees to
``server_no_context_takeover``: each message is compressed on its own, so its compressed
frame is the same bytes for every client too, whatever that client received before.
Messages shorter than a threshold are sent uncompressed (RSV1 clear), which RFC 7692
allows on a deflate connection: compressing a few hundred bytes saves little and costs
more than sending them.
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass

_FIN_TEXT = 0x81
_FIN_RSV1_TEXT = 0xC1
_SYNC_TAIL = b"\x00\x00\xff\xff"
#: The smallest window zlib makes for raw deflate (it turns 8 into 9).
MIN_WINDOW_BITS = 9
MAX_WINDOW_BITS = 15
#: zlib's memLevel for a message compressed on its own: level 3 allocates 8 KB of hash
#: tables instead of 128 KB (memLevel 8), for the same output on messages of a few KB.
_MEM_LEVEL = 3


def _header(first_byte: int, length: int) -> bytes:
    if length < 126:
        return struct.pack("!BB", first_byte, length)
    if length < 1 << 16:
        return struct.pack("!BBH", first_byte, 126, length)
    return struct.pack("!BBQ", first_byte, 127, length)


def text_frame(payload: bytes) -> bytes:
    """The unmasked, uncompressed WebSocket text frame (FIN set) carrying ``payload``."""
    return _header(_FIN_TEXT, len(payload)) + payload


def deflated_text_frame(payload: bytes, max_window_bits: int = MAX_WINDOW_BITS) -> bytes:
    """The unmasked text frame (FIN and RSV1 set) carrying ``payload`` compressed on its
    own as RFC 7692 asks (raw DEFLATE, sync flush, the final ``00 00 ff ff`` removed),
    with a window of at most ``2 ** max_window_bits`` bytes: no larger than the message
    needs, since a smaller window compresses a short message as well, faster."""
    bits = min(max_window_bits, max(MIN_WINDOW_BITS, (len(payload) - 1).bit_length()))
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits, _MEM_LEVEL)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if data.endswith(_SYNC_TAIL):
        data = data[:-4]
    return _header(_FIN_RSV1_TEXT, len(data)) + data


@dataclass(frozen=True, slots=True)
class Deflate:
    """permessage-deflate as agreed with one client: messages of at least ``threshold``
    bytes are compressed with a window of at most ``2 ** max_window_bits``."""

    max_window_bits: int = MAX_WINDOW_BITS
    threshold: int = 512

    def compresses(self, payload: bytes) -> bool:
        """Whether ``payload`` goes out compressed."""
        return len(payload) >= self.threshold


class MessageFrames:
    """The frames of one message (its JSON text, ``payload``), each made at most once:
    uncompressed, and compressed for each window size asked for. The hub makes one per
    event and hands it to every member of the event's room."""

    __slots__ = ("_deflated", "_plain", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._plain: bytes | None = None
        self._deflated: dict[int, bytes] | None = None

    def frame(self, deflate: Deflate | None) -> bytes:
        """The frame to write to a client with ``deflate`` agreed (None: no compression)."""
        if deflate is not None and deflate.compresses(self.payload):
            bits = deflate.max_window_bits
            if self._deflated is None:
                self._deflated = {}
            frame = self._deflated.get(bits)
            if frame is None:
                frame = self._deflated[bits] = deflated_text_frame(self.payload, bits)
            return frame
        if self._plain is None:
            self._plain = text_frame(self.payload)
        return self._plain


class RecentFrames:
    """The :class:`MessageFrames` of the latest ``capacity`` events made or asked for, by
    (room, seq): the clients that resume the same events at once share their compression,
    as live members of a room do. An entry counts only for the same JSON text (a reset
    log reuses seqs)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, int], MessageFrames] = OrderedDict()

    def of(self, room: str, seq: int, payload: bytes) -> MessageFrames:
        """The frames of event ``seq`` of ``room`` whose JSON text is ``payload``."""
        key = (room, seq)
        frames = self._entries.get(key)
        if frames is not None and frames.payload == payload:
            self._entries.move_to_end(key)
            return frames
        frames = self._entries[key] = MessageFrames(payload)
        self._entries.move_to_end(key)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return frames
