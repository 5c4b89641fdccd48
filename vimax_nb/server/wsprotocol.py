"""Tornado's WebSocket protocol as the hub needs it: permessage-deflate without context
takeover, and close code 1007 for a text frame that is not UTF-8.

Compression: the hub compresses each message once for every client
(:mod:`vimax_nb.server.frames`), which needs ``server_no_context_takeover``; RFC 7692
(7.1.1) lets a server add it, and ``client_no_context_takeover``, to any offer it
accepts. With both, a connection keeps no zlib state between messages in either
direction: Tornado's decompressor is made per message, and the hub writes its own
frames (Tornado's compressor is dropped), so an idle connection costs no zlib memory at
all (a persistent pair costs about 300 KB at zlib's defaults).

UTF-8: Tornado drops the TCP connection without a close frame when a text frame is not
valid UTF-8; RFC 6455 (7.4.1) asks for close code 1007, which tells the client why.
"""

from __future__ import annotations

import functools
from typing import Any

from tornado.concurrent import Future
from tornado.websocket import (
    WebSocketHandler,
    WebSocketProtocol13,
    _PerMessageDeflateDecompressor,
    _WebSocketParams,
)

from ..protocol import CLOSE_INVALID_UTF8
from .frames import MAX_WINDOW_BITS, MIN_WINDOW_BITS

INVALID_UTF8_REASON = "a text frame was not valid UTF-8"


class HubWebSocketProtocol(WebSocketProtocol13):
    """:class:`WebSocketProtocol13` that agrees to permessage-deflate only without context
    takeover (recording the window the client allows in :attr:`deflate_window_bits`), and
    closes with 1007 (and the reason :data:`INVALID_UTF8_REASON`) instead of dropping the
    connection when a text frame, after decompression, is not UTF-8; every other frame is
    handled as Tornado does."""

    # Slots, not the instance's dict: Tornado's protocol fills its dict up to a resize,
    # and one attribute more would cost every connection 1.5 KB.
    __slots__ = ("_decoding_text", "deflate_window_bits")

    def __init__(
        self, handler: WebSocketHandler, mask_outgoing: bool, params: _WebSocketParams
    ) -> None:
        #: The largest window (bits) the client lets the server compress with, when
        #: permessage-deflate was agreed at the handshake; None: not agreed.
        self.deflate_window_bits: int | None = None
        # True from the arrival of a text frame until Tornado hands it on decoded: an
        # abort in between is Tornado refusing its bytes as UTF-8.
        self._decoding_text = False
        super().__init__(handler, mask_outgoing, params)

    def _create_compressors(
        self,
        side: str,
        agreed_parameters: dict[str, Any],
        compression_options: dict[str, Any] | None = None,
    ) -> None:
        # Tornado answers the offer with this same dict: what is added here is agreed.
        agreed_parameters["server_no_context_takeover"] = None
        agreed_parameters["client_no_context_takeover"] = None
        super()._create_compressors(side, agreed_parameters, compression_options)
        # The hub writes its own frames (vimax_nb.server.frames); Tornado's compressor
        # would only hold memory. Without it, anything Tornado itself sends goes out
        # uncompressed, which the extension allows.
        self._compressor = None
        # Without context takeover a decompressor keeps nothing between messages: the
        # connections with the same limits share one.
        client_bits = agreed_parameters.get("client_max_window_bits")
        self._decompressor = _stateless_decompressor(
            int(client_bits) if client_bits else MAX_WINDOW_BITS, self.params.max_message_size
        )
        bits = int(agreed_parameters.get("server_max_window_bits") or MAX_WINDOW_BITS)
        # zlib makes no raw deflate stream with a 256-byte window: a client that asks
        # for one (8 bits) gets every message uncompressed, which the extension allows.
        self.deflate_window_bits = bits if bits >= MIN_WINDOW_BITS else None

    def _handle_message(self, opcode: int, data: bytes) -> Future[None] | None:
        self._decoding_text = opcode == 0x1
        try:
            return super()._handle_message(opcode, data)
        finally:
            self._decoding_text = False

    def _run_callback(self, callback: Any, *args: Any, **kwargs: Any) -> Future[Any] | None:
        self._decoding_text = False
        return super()._run_callback(callback, *args, **kwargs)

    def _abort(self) -> None:
        if self._decoding_text and not self.server_terminated:
            self._decoding_text = False
            self.close(CLOSE_INVALID_UTF8, INVALID_UTF8_REASON)
            return
        super()._abort()


@functools.cache
def _stateless_decompressor(
    window_bits: int, max_message_size: int
) -> _PerMessageDeflateDecompressor:
    return _PerMessageDeflateDecompressor(
        persistent=False, max_wbits=window_bits, max_message_size=max_message_size
    )


def hub_websocket_protocol(handler: WebSocketHandler) -> HubWebSocketProtocol | None:
    """The protocol ``handler.get_websocket_protocol`` returns: as Tornado's (version 13
    only, the handler's ping, size and compression settings), but a
    :class:`HubWebSocketProtocol`."""
    if handler.request.headers.get("Sec-WebSocket-Version") != "13":
        return None
    params = _WebSocketParams(
        ping_interval=handler.ping_interval,
        ping_timeout=handler.ping_timeout,
        max_message_size=handler.max_message_size,
        compression_options=handler.get_compression_options(),
    )
    return HubWebSocketProtocol(handler, False, params)
