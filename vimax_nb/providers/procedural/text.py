"""An offline chat model that writes with a small grammar: :class:`ProceduralChatModel`.

It answers the ViMax agents' tasks (:data:`TASKS`) without a network or a model: the
same task, inputs and seed always give the same answer, character for character, in any
process. Inputs and answers are plain data (dicts and lists) with the field names of
ViMax's models (``Story``, ``CharacterInScene``, ``Scene``, ``ShotBriefDescription``,
``ShotDescription``, ``Camera``); the caller's response model gives the answer its type.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from ..base import ChatRequest, M, ProviderCall, ProviderError
from . import _reading as rd
from . import _words as wd

CAMERA_MOVES: tuple[str, ...] = wd.CAMERA_MOVES
"""The camera moves a shot's ``motion_desc`` names, exactly one of them."""
TASKS: tuple[str, ...] = (
    "develop_story", "extract_characters", "write_script", "design_storyboard",
    "decompose_shot", "construct_camera_tree",
)  # fmt: skip
"""The tasks the procedural chat model answers; any other raises :class:`ProviderError`."""

T = TypeVar("T")
Inputs = Mapping[str, Any]
Answer = dict[str, Any]


class ProceduralChatModel:
    """A deterministic, offline :class:`~vimax_nb.providers.base.ChatModel`.

    Dispatches on ``request.task`` (one of :data:`TASKS`) and ignores
    ``request.instructions``. The answer is built as plain data shaped like ViMax's
    model for the task and returned validated as ``request.response_model``. Raises
    :class:`ProviderError` (never retryable) for an unknown task, bad inputs, or a
    response model the answer does not fit. Safe to share between threads.
    """

    provider = "procedural"
    model = "procedural-text"

    def probe(self) -> None:
        """Nothing to reach: always ready."""

    def complete(self, request: ChatRequest[M], call: ProviderCall | None = None) -> M:
        """Answer ``request``; same task, inputs and seed give an identical answer."""
        handler = _HANDLERS.get(request.task)
        if handler is None:
            raise ProviderError(
                f"the procedural chat model does not know the task {request.task!r}; "
                f"it knows {', '.join(TASKS)}",
                provider=self.provider,
            )
        digest = hashlib.sha256(
            json.dumps(request.inputs, sort_keys=True, default=str).encode()
        ).hexdigest()
        rng = random.Random(f"{request.seed}:{request.task}:{digest}")
        try:
            answer = handler(request.inputs, rng)
        except KeyError as exc:
            raise ProviderError(
                f"{request.task}: missing input {exc}", provider=self.provider
            ) from exc
        except (TypeError, ValueError) as exc:
            raise ProviderError(
                f"{request.task}: bad inputs: {exc}", provider=self.provider
            ) from exc
        try:
            return request.response_model.model_validate(answer)
        except ValidationError as exc:
            raise ProviderError(
                f"{request.task} answers with the fields {', '.join(answer)}, which do not fit "
                f"the response model {request.response_model.__name__}",
                provider=self.provider,
            ) from exc


def _chunks(items: Sequence[T], n: int) -> list[list[T]]:
    """``items`` in ``n`` contiguous, balanced, non-empty parts (repeating when short)."""
    size = len(items)
    return [
        list(items[i * size // n : (i + 1) * size // n]) or [items[min(i * size // n, size - 1)]]
        for i in range(n)
    ]


def _count(value: Any, what: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValueError(f"{what} must be a whole number from 1 to {high}, not {value!r}")
    return value


def _when(tod: str) -> str:
    """``at night``, ``by day``, ``in the morning``."""
    special = {"day": "by day", "night": "at night", "dawn": "at dawn", "dusk": "at dusk"}
    return special.get(tod.lower(), f"in the {tod}")


def _record(data: Inputs, key: str) -> Inputs:
    """``data[key]``, which must be a mapping (the plain data of one of ViMax's models)."""
    value = data[key]
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be a mapping, not {type(value).__name__}")
    return value


def _text(data: Inputs, key: str) -> str:
    """``data[key]``, which must be a string with some text in it."""
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a non-empty string, not {value!r}")
    return value


def _names(characters: Any) -> list[str]:
    """The ``identifier_in_scene`` of each character (plain ``CharacterInScene`` data)."""
    return [_text(c, "identifier_in_scene") for c in characters or []]


# -- develop_story -----------------------------------------------------------------------


def _develop_story(inputs: Inputs, rng: random.Random) -> Answer:
    """Five paragraphs (setup, incident, rising action, climax, resolution) naming the idea's
    characters (at least two: a companion joins a lone hero) the same way throughout."""
    idea = " ".join(str(inputs["idea"]).split())
    if not idea:
        raise ValueError("the idea is empty")
    tone = rd.tone(str(inputs.get("user_requirement", "")), str(inputs.get("style", "")))
    cast, phrases, tokens = rd.cast_of(idea, rng)
    if len(cast) == 1:
        free = [n for n in wd.NAMES if n != cast[0].name]
        cast.append(rd.Cast(rng.choice(free), rng.choice(wd.COMPANIONS)))
    hero, ally = cast[0], cast[1]
    goal_raw = hero.goal
    goal = goal_raw
    for member in cast[1:]:
        if member.source:
            goal = re.sub(rf"\b{re.escape(member.source)}\b", member.name, goal, count=1)
    kinds = [(p, rd.kind(p, tokens)) for p in phrases]
    place = next((rd.the(p.bare) for p, k in kinds if k == "place"), None) or next(
        (f"the {w}" for w in rd.places(idea)), rng.choice(wd.DEFAULT_PLACES)
    )
    thing = next((f"{tokens[p.start].lower()} {p.bare}" for p, k in kinds if k == "thing"), "")
    thing = thing or rng.choice(wd.THINGS)
    trouble = next((p.bare for p, k in kinds if k == "event"), rng.choice(wd.TROUBLES[tone]))
    dream = goal if goal and goal == goal_raw else rng.choice(wd.DREAMS)
    slots = {
        "H": hero.name, "hd": hero.desc, "A": ally.name, "ad": ally.desc,
        "A_intro": f"{ally.name}, {ally.desc},", "place": place, "Place": place.capitalize(),
        "thing": thing, "the_thing": "the " + thing.split(" ", 1)[1], "trouble": trouble,
        "dream": dream, "goal": goal or dream, "tod": rng.choice(wd.TODS),
    }  # fmt: skip
    rising = rng.choice(wd.RISING)
    if len(cast) > 2:
        rising += wd.EXTRA_CAST.format(C=cast[2].name, cd=cast[2].desc)
    beats = [wd.SETUP, wd.INCIDENT, (rising,), wd.CLIMAX[tone], wd.RESOLUTION]
    text = "\n\n".join(rng.choice(options).format_map(slots) for options in beats)
    words = [t for t in tokens if t[0].isalpha()]
    if words and words[0].lower() in ("a", "an"):
        words[0] = "the"
    animate = [p for p, k in kinds if k == "animate"]
    things = [p for p, k in kinds if k == "thing"]
    if len(words) > 7 and len(animate) > 1 and animate[0].count == 1:
        words = f"the {animate[0].one} and the {animate[1].one}".split()
    elif len(words) > 7:
        short = f"{hero.name} and the {things[0].bare}" if things else f"the story of {hero.name}"
        words = short.split()
    title = rd.title_case(words)
    verb = "sets out to" if goal_raw.startswith("find") else rng.choice(wd.LOGLINE_VERBS)
    logline = f"{hero.name}, {hero.desc}, {verb} {goal_raw}."
    if not goal_raw:
        logline = f"{hero.name}, {hero.desc}, and {ally.name}, {ally.desc}, face the {trouble}."
    return {"title": title, "logline": logline, "text": text}


# -- extract_characters ------------------------------------------------------------------


def _extract_characters(inputs: Inputs, rng: random.Random) -> Answer:
    """One to six characters in order of first appearance, idx 0..n-1."""
    found = rd.find_characters(str(inputs["text"]))
    return {
        "characters": [
            {"idx": i, "identifier_in_scene": name, "static_features": s, "dynamic_features": d}
            for i, (name, desc) in enumerate(found)
            for s, d in [rd.features(name, desc)]
        ]
    }


# -- write_script and design_storyboard --------------------------------------------------


def _write_script(inputs: Inputs, rng: random.Random) -> Answer:
    """Exactly ``scenes`` scenes following the story in order, each with 2-4 lines of
    dialogue spoken by the given characters present in it."""
    story = _record(inputs, "story")
    title, text = str(story["title"]), _text(story, "text")
    n = _count(inputs["scenes"], "scenes", 50)
    names = _names(inputs.get("characters")) or [name for name, _ in rd.find_characters(text)]
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paragraphs) < n:
        paragraphs = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if s]
    tokens = rd.TOKEN.findall(text)
    things = [p for p in rd.phrases(tokens) if rd.kind(p, tokens) == "thing"]
    thing = f"{tokens[things[0].start].lower()} {things[0].bare}" if things else "this"
    everywhere = rd.places(text)
    scenes = []
    for i, chunk in enumerate(_chunks(paragraphs, n)):
        part = " ".join(chunk)
        present = [name for name in names if rd.mentions(part, name)] or names[:1]
        location = next(iter(rd.places(part) + everywhere), None) or rng.choice(
            wd.DEFAULT_LOCATIONS
        )
        tod = next((t for cue, t in wd.TIME_CUES if re.search(rf"\b{cue}\b", part.lower())), "")
        tod = tod or wd.TIMES[i * len(wd.TIMES) // n]
        outdoor = set(location.split()) & wd.OUTDOOR
        lines = [f"{'EXT' if outdoor else 'INT'}. {location.upper()} - {tod.upper()}", part, ""]
        count = rng.randint(2, 4)
        for j in range(count):
            speaker = present[j % len(present)]
            others = [name for name in present if name != speaker]
            beat = wd.BEATS[min(4, int((i + (j + 0.5) / count) / n * 5))]
            options = [t for t in wd.DIALOGUE[beat] if others or "{other}" not in t]
            line = rng.choice(options).format(
                other=others[0] if others else "", place=rd.the(location), thing=thing
            )
            lines.append(f"{speaker.upper()}: {line}")
        scenes.append(
            {
                "idx": i,
                "location": location,
                "time_of_day": tod,
                "characters": present,
                "script": "\n".join(lines),
            }
        )
    return {"title": title, "scenes": scenes}


def _design_storyboard(inputs: Inputs, rng: random.Random) -> Answer:
    """Exactly ``shots`` shots: a wide master first (camera 0), then the scene's lines, each
    filmed on its speaker (close on the first character, over the shoulder on others);
    cameras are numbered 0, 1, 2 in order of first use."""
    scene = _record(inputs, "scene")
    script, place = _text(scene, "script"), rd.the(str(scene["location"]))
    tod = str(scene.get("time_of_day", "day"))
    n = _count(inputs["shots"], "shots", 48)
    names = _names(inputs.get("characters"))
    by_key = {name.lower(): name for name in names}
    dialogue = [
        (by_key[s[0].lower()], s[1])
        for line in script.splitlines()
        if (s := rd.speaker(line)) is not None and s[0].lower() in by_key
    ]
    listed = {str(c).lower() for c in scene.get("characters", [])}
    present = [x for x in names if x.lower() in listed or rd.mentions(script, x)] or names[:1]
    ambience = next(
        (sound for words, sound in wd.AMBIENCE if set(words.split()) & set(place.lower().split())),
        wd.DEFAULT_AMBIENCE,
    )
    roles: list[str] = []
    shots = []
    for i in range(n):
        line = dialogue.pop(0) if dialogue and (i or n == 1) else None
        a = present[0] if present else ""
        if i == 0 or not present:
            role, subject = "wide", ""
        elif line:
            role, subject = ("close", a) if line[0] == a else ("reverse", line[0])
        else:
            choices = ["wide", "close"] + (["reverse"] if len(present) > 1 else [])
            role = rng.choice([r for r in choices if r != roles[-1]])
            subject = a if role == "close" else present[1] if role == "reverse" else ""
        if role == "wide":
            action = rng.choice(wd.SOLO_ACTIONS if len(present) == 1 else wd.GROUP_ACTIONS)
            who = f": {rd.join_names(present)} {action}" if present else ", empty and still"
            visual = f"Wide shot of {place} {_when(tod)}{who}."
        elif role == "close":
            visual = f"Close-up of {subject} in {place}, {rng.choice(wd.EXPRESSIONS)}."
        else:
            shoulder = a if subject != a else present[1]
            visual = (
                f"Over-the-shoulder shot from behind {shoulder} in {place}: "
                f"{subject} {rng.choice(wd.REACTIONS)}."
            )
        audio = f'{line[0]}: "{line[1]}"' if line else f"Ambience: {ambience}."
        roles.append(role)
        shots.append((role, visual, audio))
    cams: dict[str, int] = {}
    for role in roles:
        cams.setdefault(role, len(cams))
    return {
        "shots": [
            {
                "idx": i,
                "is_last": i == n - 1,
                "cam_idx": cams[role],
                "visual_desc": visual,
                "audio_desc": audio,
            }
            for i, (role, visual, audio) in enumerate(shots)
        ]
    }


# -- decompose_shot and construct_camera_tree --------------------------------------------


def _decompose_shot(inputs: Inputs, rng: random.Random) -> Answer:
    """Keeps every field of the given shot it does not write (the brief); frames name only
    characters the brief names; one camera move."""
    shot = dict(_record(inputs, "shot"))
    visual_desc = str(shot["visual_desc"])
    everyone = _names(inputs.get("characters"))
    scene = _record(inputs, "scene") if inputs.get("scene") else {}
    place = rd.the(str(scene.get("location", "scene")))
    when = _when(str(scene.get("time_of_day", "day")))
    visible = [i for i, name in enumerate(everyone) if rd.mentions(visual_desc, name)]
    names = [everyone[i] for i in visible]
    text = visual_desc.lower()
    role = "close" if text.startswith("close") else "reverse" if "shoulder" in text else "wide"
    move = rng.choice(wd.MOVES_BY_ROLE[role])
    variation = "small" if move == "static" else "large" if move.startswith("dolly") else "medium"
    first = visible[:1] if variation == "large" and len(visible) > 1 else visible
    framing = {"wide": "Wide shot", "close": "Close-up", "reverse": "Over-the-shoulder shot"}[role]
    start, end = rng.choice(wd.START_POSES), rng.choice(wd.END_POSES)
    if not visible:
        start, end = "empty, the light low", "empty, the light shifted"
    ff_who = rd.join_names(names[: len(first)]) + ", " if first else ""
    lf_who = rd.join_names(names) + ", " if names else ""
    ff = f"{framing}, {place} {when}: {ff_who}{start}."
    lf = f"{framing}, {wd.END_FRAMING[move]}, {place} {when}: {lf_who}{end}."
    if len(first) < len(visible):
        plural = len(names) > 2
        motion = f"{rd.join_names(names[1:])} step{'' if plural else 's'} into view by {names[0]}"
        reason = f"the camera travels and {rd.join_names(names[1:])} enter{'' if plural else 's'}"
    else:
        options = (
            wd.PAIR_MOTIONS if len(names) > 1 else wd.SOLO_MOTIONS if names else wd.EMPTY_MOTIONS
        )
        x, y = (names[0], names[-1]) if names else ("", "")
        motion = rng.choice(options).format(X=x, Y=y, loc=place[4:])
        reason = {
            "small": "the camera holds still; only small movements change",
            "medium": f"the camera moves ({move}) and reframes the subject",
            "large": "the camera travels and the framing changes a lot",
        }[variation]
    return {
        **shot,
        "variation_type": variation,
        "variation_reason": reason,
        "ff_desc": ff,
        "ff_vis_char_idxs": first,
        "lf_desc": lf,
        "lf_vis_char_idxs": visible,
        "motion_desc": f"Camera: {move}. {motion[:1].upper()}{motion[1:]}.",
    }


def _construct_camera_tree(inputs: Inputs, rng: random.Random) -> Answer:
    """One camera per camera index, in order of first use; shot 0's camera is the root and
    every other camera's parent is the shot just before its first shot."""
    shots = inputs["shots"]
    if not isinstance(shots, Sequence) or isinstance(shots, str) or not shots:
        raise ValueError("the shots must be a non-empty list")
    pairs = []
    for shot in shots:
        idx, cam = (shot.get(k) if isinstance(shot, Mapping) else None for k in ("idx", "cam_idx"))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (idx, cam)):
            raise ValueError(f"a shot needs idx and cam_idx: {shot!r}")
        pairs.append((int(idx), int(cam)))  # type: ignore[arg-type]
    pairs.sort()
    if [idx for idx, _ in pairs] != list(range(len(pairs))):
        raise ValueError(
            f"shot idx must be 0..{len(pairs) - 1}, each once; got {[idx for idx, _ in pairs]}"
        )
    cameras: dict[int, Answer] = {}
    for idx, cam in pairs:
        if cam in cameras:
            cameras[cam]["active_shot_idxs"].append(idx)
        else:
            parent = pairs[idx - 1] if idx else None
            cameras[cam] = {
                "idx": cam,
                "active_shot_idxs": [idx],
                "parent_cam_idx": parent[1] if parent else None,
                "parent_shot_idx": parent[0] if parent else None,
            }
    return {"cameras": list(cameras.values())}


_HANDLERS: dict[str, Callable[[Inputs, random.Random], Answer]] = {
    "develop_story": _develop_story,
    "extract_characters": _extract_characters,
    "write_script": _write_script,
    "design_storyboard": _design_storyboard,
    "decompose_shot": _decompose_shot,
    "construct_camera_tree": _construct_camera_tree,
}
