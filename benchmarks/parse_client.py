"""What parsing a client's WebSocket frame costs: ``parse_client_message`` against the
bare pydantic adapter (what parsing a valid frame cost before the bounds on depth,
numbers and Unicode), and the time to refuse hostile frames of up to 64 KiB.

a. valid frames (subscribe, ping, control, get_metrics, as text and as bytes):
   microseconds per frame, bare adapter and ``parse_client_message``, and the difference;
b. hostile frames near the 64 KiB frame limit (deep nesting, thousands of arrays,
   integers or fields, lone surrogates, a 5000-digit integer): milliseconds per frame
   to refuse, and the size of the error frame answered.

The figures are the best of ``--repeat`` runs.

Run: ``python benchmarks/parse_client.py [--repeat K]``.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _table import print_table

from vimax_nb.protocol import ProtocolError, parse_client_message
from vimax_nb.protocol.messages import _CLIENT_ADAPTER

MAX_OVERHEAD_US = 0.5  # per valid frame, over the bare adapter
MAX_REFUSAL_MS = 10.0  # per hostile frame of up to 64 KiB

VALID: list[tuple[str, str | bytes]] = [
    (
        "subscribe",
        '{"type": "subscribe", "room": "workflow:8e7a15d1463e", "after": 41, '
        '"epoch": "9d3c0a7e", "id": "s1"}',
    ),
    ("ping", '{"type": "ping", "ts": 1716543210123}'),
    (
        "control",
        '{"type": "control", "workflow_id": "8e7a15d1463e", "action": "pause", "id": "c1"}',
    ),
    ("get_metrics (bytes)", b'{"type": "get_metrics", "id": "m1"}'),
]


def _chain(levels: int, sibling: int) -> str:
    text = "[]"
    for _ in range(levels):
        text = "[" + "[" * sibling + "]" * sibling + "," + text + "]"
    return text


_CHAIN = _chain(33, 20)
HOSTILE: list[tuple[str, str]] = [
    ("array nested 32,000 deep", "[" * 32000 + "]" * 32000),
    ("900 arrays nested 33 deep", "[" + ",".join(["[" * 33 + "]" * 33] * 900) + "]"),
    ("26 chains 33 deep, siblings", "[" + ",".join([_CHAIN] * (60000 // len(_CHAIN))) + "]"),
    ("16,000 empty arrays", "[" + ",".join(["[]"] * 16000) + "]"),
    ("30,000 small integers", "[" + ",".join(["1"] * 30000) + "]"),
    ("2,500 25-digit integers", '{"type": "ping", "ts": [' + ",".join(["9" * 25] * 2500) + "]}"),
    (
        "a 5000-digit after",
        '{"type": "subscribe", "room": "coordinator", "after": ' + "9" * 5000 + "}",
    ),
    ("10,000 lone surrogates", '{"type": "ping", "ts": "' + "\\ud800" * 10000 + '"}'),
    (
        "6,000 unknown fields",
        '{"type": "ping", ' + ",".join(f'"k{i}": 1' for i in range(6000)) + "}",
    ),
    ("one 60,000-byte key", '{"type": "ping", "' + "k" * 60000 + '": 1}'),
]


def best(call: Callable[[], object], number: int, repeat: int) -> float:
    """The best time of one call, in seconds, over ``repeat`` runs of ``number`` calls."""
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number


def refuse(raw: str | bytes) -> int:
    """Parse ``raw``, which must be refused; the size of the error frame answered."""
    try:
        parse_client_message(raw)
    except ProtocolError as error:
        return len(error.to_frame().model_dump_json())
    raise AssertionError("a hostile frame was accepted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best counts")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    missed = False

    rows = []
    for name, raw in VALID:
        parse_client_message(raw)  # valid
        bare = best(lambda raw=raw: _CLIENT_ADAPTER.validate_json(raw), 20000, args.repeat)
        full = best(lambda raw=raw: parse_client_message(raw), 20000, args.repeat)
        extra = (full - bare) * 1e6
        ok = extra <= MAX_OVERHEAD_US
        missed |= not ok
        rows.append(
            [
                name,
                f"{bare * 1e6:.2f}",
                f"{full * 1e6:.2f}",
                f"{extra:+.2f}",
                "PASS" if ok else "BELOW",
            ]
        )
    print(f"a. valid frames, microseconds (target: at most +{MAX_OVERHEAD_US} us over the adapter)")
    print_table(["frame", "adapter", "parse_client_message", "difference", ""], rows)

    rows = []
    for name, raw in HOSTILE:
        size = refuse(raw)
        took = best(lambda raw=raw: refuse(raw), 5, args.repeat)
        ok = took * 1e3 <= MAX_REFUSAL_MS
        missed |= not ok
        rows.append(
            [
                name,
                str(len(raw.encode())),
                f"{took * 1e3:.2f}",
                str(size),
                "PASS" if ok else "BELOW",
            ]
        )
    print()
    print(f"b. hostile frames refused (target: at most {MAX_REFUSAL_MS:g} ms each)")
    print_table(["frame", "bytes", "ms", "answer bytes", ""], rows)
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
