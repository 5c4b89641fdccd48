"""What an A2A message commissions: the kind of workflow and its parameters.

- A **text** part is a request in plain words ("a three-scene watercolor video about a
  fox who learns to fly"), read by :func:`~vimax_nb.pipelines.request.parse_request_offline`
  into Idea2Video parameters; text with a scene heading (``INT. KITCHEN - NIGHT``,
  ``Scene 2:``) is a script, for Script2Video.
- A **file** part (inline bytes, UTF-8 text) is a script; text next to it becomes the
  script's ``user_requirement``.
- A **data** part carries parameters explicitly, either ``{"kind": ..., "params":
  {...}, "priority": n}`` or the parameters themselves (``{"scenes": 2, "style":
  "anime"}``); they override what the words say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from a2a.types import Message
from google.protobuf.json_format import MessageToDict
from pydantic import ValidationError

from ..pipelines.params import Idea2VideoParams, Script2VideoParams
from ..pipelines.request import describe_plan, parse_request_offline
from ..pipelines.script2video import HEADING, count_scenes

IDEA2VIDEO = "idea2video"
SCRIPT2VIDEO = "script2video"
_ENVELOPE = frozenset({"kind", "params", "priority"})
#: Media types a file part may have to be read as a script (besides any ``text/*``).
SCRIPT_TYPES = frozenset({"", "application/octet-stream", "application/x-fountain"})


class UnusableMessage(ValueError):
    """The message does not say what to make; the text says what it lacks."""


@dataclass(frozen=True, slots=True)
class Commission:
    """A workflow to start: its kind, parameters (not yet validated: the pipeline does
    that) and priority, and one line that says what it will make."""

    kind: str
    params: dict[str, Any]
    priority: int
    plan: str


def read_commission(message: Message) -> Commission:
    """The workflow ``message`` asks for (see the module's description); raises
    :class:`UnusableMessage` when it names none, or a part cannot be read."""
    texts: list[str] = []
    scripts: list[str] = []
    explicit: dict[str, Any] = {}
    for n, part in enumerate(message.parts):
        content = part.WhichOneof("content")
        if content == "text":
            if part.text.strip():
                texts.append(part.text)
        elif content == "data":
            _merge_data(explicit, _whole_numbers(MessageToDict(part.data)), n)
        elif content == "raw":
            scripts.append(_script_file(part.raw, part.media_type, part.filename, n))
        elif content == "url":
            raise UnusableMessage(
                f"part {n} is a file by URL ({part.url[:80]}); vimax-nb does not fetch files: "
                "send a script inline (raw bytes, UTF-8 text) or as a text part"
            )
    text = "\n".join(texts).strip()
    kind = explicit.get("kind")
    params: dict[str, Any] = {}
    script = "\n\n".join(s.strip() for s in scripts if s.strip())
    if kind is None:
        if script:
            kind = SCRIPT2VIDEO
        elif text and HEADING.search(text):
            kind, script, text = SCRIPT2VIDEO, text, ""
        elif text:
            kind = IDEA2VIDEO
        elif "script" in explicit.get("params", {}):
            kind = SCRIPT2VIDEO
        elif "idea" in explicit.get("params", {}):
            kind = IDEA2VIDEO
        else:
            raise UnusableMessage(
                "the message does not say what to make: send a text part with the idea "
                "('a watercolor video about a fox who learns to fly'), a script (a file "
                'part, or text with INT./EXT. headings), or a data part {"kind": ..., '
                '"params": {...}}'
            )
    if kind == IDEA2VIDEO and text:
        try:
            params = parse_request_offline(text).model_dump(mode="json", exclude_unset=True)
        except (ValueError, ValidationError) as exc:
            raise UnusableMessage(str(exc)) from None
    elif kind == SCRIPT2VIDEO:
        if script:
            params["script"] = script
        if text:
            params["user_requirement"] = text[:2000]
    params.update(explicit.get("params", {}))
    priority = explicit.get("priority", 0)
    return Commission(kind, params, priority, plan_of(kind, params))


def plan_of(kind: str, params: dict[str, Any]) -> str:
    """One line that says what a workflow of ``kind`` with ``params`` will make (the
    parameters as given when they are not valid: the pipeline says what is wrong)."""
    try:
        if kind == IDEA2VIDEO:
            return f"{kind}: {describe_plan(Idea2VideoParams.model_validate(params))}"
        if kind == SCRIPT2VIDEO:
            valid = Script2VideoParams.model_validate(params)
            scenes = valid.scenes or count_scenes(valid.script)
            return (
                f"{kind}: {scenes} scene{'s' if scenes != 1 else ''} \N{MULTIPLICATION SIGN} "
                f"{valid.shots_per_scene} shots, {valid.style}, {valid.width}"
                f"\N{MULTIPLICATION SIGN}{valid.height} at {valid.fps} fps"
            )
    except ValidationError:
        pass
    shown = json.dumps(params, ensure_ascii=False, default=str)
    return f"{kind}: {shown if len(shown) <= 120 else shown[:117] + '...'}"


def _merge_data(explicit: dict[str, Any], data: Any, n: int) -> None:
    if not isinstance(data, dict):
        raise UnusableMessage(
            f"part {n} is data but not an object: send the parameters as an object, "
            '{"kind": "idea2video", "params": {"idea": "..."}} or {"scenes": 2}'
        )
    if data and set(data) <= _ENVELOPE:
        kind = data.get("kind")
        if "kind" in data and (not isinstance(kind, str) or not kind):
            raise UnusableMessage(f"part {n}: 'kind' must be the name of a kind of workflow")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise UnusableMessage(f"part {n}: 'params' must be an object of parameters")
        if "kind" in data:
            explicit["kind"] = kind
        if "priority" in data:
            explicit["priority"] = data["priority"]
        explicit.setdefault("params", {}).update(params)
    else:
        explicit.setdefault("params", {}).update(data)


def _whole_numbers(value: Any) -> Any:
    """``value`` with floats that are whole numbers made ints: a data part's numbers
    are all floats (``google.protobuf.Value``), and ``scenes: 2.0`` means 2."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def _script_file(raw: bytes, media: str, filename: str, n: int) -> str:
    base = media.split(";")[0].strip().lower()
    if not (base.startswith("text/") or base in SCRIPT_TYPES):
        raise UnusableMessage(
            f"part {n} is a {base} file ({filename or 'no name'}); a file part must be a "
            "script, as UTF-8 text"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnusableMessage(
            f"part {n} ({filename or 'a file'}) is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
