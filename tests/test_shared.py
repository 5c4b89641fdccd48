import threading

import pytest

from vimax_nb.shared import CancelToken, TaskCanceled, format_timestamp, parse_timestamp


def test_format_timestamp() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert format_timestamp(1.25) == "1970-01-01T00:00:01.250Z"
    assert format_timestamp(1.001) == "1970-01-01T00:00:01.001Z"
    assert format_timestamp(59.9999) == "1970-01-01T00:00:59.999Z"
    assert format_timestamp(1_700_000_000.123) == "2023-11-14T22:13:20.123Z"
    for ms in range(0, 1000, 7):
        seconds = 1_700_000_000 + ms / 1000
        assert format_timestamp(seconds).endswith(f".{ms:03d}Z")


def test_parse_timestamp_reads_what_format_writes() -> None:
    assert parse_timestamp(format_timestamp(1_700_000_000.25)) == 1_700_000_000.25
    assert parse_timestamp("2023-11-14T22:13:20+00:00") == 1_700_000_000.0
    assert parse_timestamp(None) is None
    assert parse_timestamp("") is None
    assert parse_timestamp("yesterday") is None


def test_cancel_token_from_another_thread() -> None:
    token = CancelToken()
    token.raise_if_cancelled()
    thread = threading.Thread(target=token.cancel)
    thread.start()
    thread.join()
    assert token.cancelled
    with pytest.raises(TaskCanceled, match="canceled"):
        token.raise_if_cancelled()
