"""Tornado's WebSocket protocol, closing with 1007 on a text frame that is not UTF-8.

Tornado drops the TCP connection without a close frame when a text frame is not valid
UTF-8; RFC 6455 (7.4.1) asks for close code 1007, which tells the client why.
"""

from __future__ import annotations

from typing import Any

from tornado.concurrent import Future
from tornado.websocket import WebSocketHandler, WebSocketProtocol13, _WebSocketParams

from ..protocol import CLOSE_INVALID_UTF8

INVALID_UTF8_REASON = "a text frame was not valid UTF-8"


class StrictTextProtocol(WebSocketProtocol13):
    """:class:`WebSocketProtocol13` that closes with 1007 (and the reason
    :data:`INVALID_UTF8_REASON`) instead of dropping the connection when a text frame,
    after decompression, is not UTF-8; every other frame is handled as Tornado does."""

    # True from the arrival of a text frame until Tornado hands it on decoded: an abort
    # in between is Tornado refusing its bytes as UTF-8.
    _decoding_text = False

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


def strict_text_protocol(handler: WebSocketHandler) -> StrictTextProtocol | None:
    """The protocol ``handler.get_websocket_protocol`` returns: as Tornado's (version 13
    only, the handler's ping, size and compression settings), but a
    :class:`StrictTextProtocol`."""
    if handler.request.headers.get("Sec-WebSocket-Version") != "13":
        return None
    params = _WebSocketParams(
        ping_interval=handler.ping_interval,
        ping_timeout=handler.ping_timeout,
        max_message_size=handler.max_message_size,
        compression_options=handler.get_compression_options(),
    )
    return StrictTextProtocol(handler, False, params)
