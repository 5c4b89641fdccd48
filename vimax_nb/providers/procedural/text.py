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
    characters (at least two: a companion joins a lone hero) the same way throughout, with
    the looks the idea states. The title is never empty: an idea of pictographs is titled
    by their names, one with no word worth a title is an "Untitled Story"."""
    idea = " ".join(str(inputs["idea"]).split())
    if not idea:
        raise ValueError("the idea is empty")
    pictures = rd.emoji_words(idea)
    if pictures and not re.search(r"[A-Za-z]{2}", idea):
        # an idea of pictographs only: their names are the idea ("a whale, a water wave")
        idea = ", ".join(rd.indefinite(name) for name in pictures)
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
    named = [rd.the(p.bare) for p, k in kinds if k == "place"]
    named += [rd.the(w) for w in rd.places(idea) if not any(w in n for n in named)]
    place = named[0] if named else rng.choice(wd.DEFAULT_PLACES)
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
    paragraphs = [rng.choice(options).format_map(slots) for options in beats]
    if len(named) > 1:
        # every place the idea names is in the story, so the script and frames keep them
        others = rd.join_names(named[1:])
        paragraphs[0] += rng.choice(wd.SCENERY).format_map({**slots, "others": others})
    text = "\n\n".join(paragraphs)
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
    if pictures and not re.search(r"[A-Za-z]{2}", str(inputs["idea"])):
        title = rd.title_case(rd.join_names(pictures).split())
    if not set(re.findall(r"[a-z]+", title.lower())) - rd.SMALL_WORDS:
        title = "Untitled Story"
    verb = "sets out to" if goal_raw.startswith("find") else rng.choice(wd.LOGLINE_VERBS)
    logline = f"{hero.name}, {hero.desc}, {verb} {goal_raw}."
    if not goal_raw:
        logline = f"{hero.name}, {hero.desc}, and {ally.name}, {ally.desc}, face the {trouble}."
    return {"title": title, "logline": logline, "text": text}


# -- extract_characters ------------------------------------------------------------------


def _extract_characters(inputs: Inputs, rng: random.Random) -> Answer:
    """One to six characters in order of first appearance, idx 0..n-1; the looks the text
    states for each (``Mara, silver-haired, in a red coat, ...``) are kept verbatim."""
    text = str(inputs["text"])
    found = rd.find_characters(text)
    return {
        "characters": [
            {"idx": i, "identifier_in_scene": name, "static_features": s, "dynamic_features": d}
            for i, (name, desc) in enumerate(found)
            for s, d in [rd.features(name, desc, rd.stated_looks(text, name))]
        ]
    }


# -- write_script and design_storyboard --------------------------------------------------


def _write_script(inputs: Inputs, rng: random.Random) -> Answer:
    """Exactly ``scenes`` scenes following the story in order, each headed ``INT.``/``EXT.``
    with its place and time and with 2-4 lines of dialogue spoken by the given characters
    present in it; no line is spoken twice in the script."""
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
    spoken: set[str] = set()
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
            line = _fresh_line(beat, spoken, rng, others[0] if others else "", location, thing)
            spoken.add(line)
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


def _fresh_line(
    beat: str, spoken: set[str], rng: random.Random, other: str, location: str, thing: str
) -> str:
    """A line for ``beat`` that is not in ``spoken``: one of the beat's lines, else one of
    another beat's, else one with a tag in front ("Listen. Hold on!"), else numbered."""

    def lines(beats: Sequence[str]) -> list[str]:
        return [
            t.format(other=other, place=rd.the(location), thing=thing)
            for b in beats
            for t in wd.DIALOGUE[b]
            if other or "{other}" not in t
        ]

    own = lines([beat])
    for options in (own, lines(wd.BEATS), [f"{tag} {t}" for tag in wd.DIALOGUE_TAGS for t in own]):
        fresh = [t for t in options if t not in spoken]
        if fresh:
            return rng.choice(fresh)
    k = 2
    while f"{own[0]} ({k})" in spoken:
        k += 1
    return f"{own[0]} ({k})"


def _design_storyboard(inputs: Inputs, rng: random.Random) -> Answer:
    """Exactly ``shots`` shots: a wide master first (camera 0), then the scene's lines, each
    filmed on its speaker (close on the first character, over the shoulder on others);
    cameras are numbered 0, 1, 2 in order of first use. Every line of the script is in
    exactly one shot's ``audio_desc``, verbatim as ``Speaker: "line"``, in order (a shot
    carries several when there are more lines than shots); a shot without a line has the
    ambience of the scene's place and time."""
    scene = _record(inputs, "scene")
    script, place = _text(scene, "script"), rd.the(str(scene["location"]))
    tod = str(scene.get("time_of_day", "day"))
    n = _count(inputs["shots"], "shots", 48)
    names = _names(inputs.get("characters"))
    by_key = {name.lower(): name for name in names}
    dialogue = [
        (by_key.get(who.lower(), who), _unquoted(line)) for who, line in rd.dialogue(script)
    ]
    listed = {str(c).lower() for c in scene.get("characters", [])}
    present = [x for x in names if x.lower() in listed or rd.mentions(script, x)]
    present += [who for who in dict.fromkeys(w for w, _ in dialogue) if who not in present]
    present = present or names[:1]
    ambience = _ambience(scene)
    stated = _action(script)  # the master shot shows what the script says happens
    # every line in exactly one shot, in order: one a shot after the wide master while
    # they last; more lines than shots share them out evenly
    talk = list(range(1, n)) if n > 1 else [0]
    m = min(len(talk), len(dialogue))
    said = {
        talk[k]: dialogue[k * len(dialogue) // m : (k + 1) * len(dialogue) // m] for k in range(m)
    }
    roles: list[str] = []
    shots = []
    for i in range(n):
        lines = said.get(i, [])
        line = lines[0] if lines else None
        a = present[0] if present else ""
        if i == 0 or not present:
            role, subject = "wide", ""
        elif line:
            role, subject = ("close", a) if line[0] == a else ("reverse", line[0])
        else:
            choices = ["wide", "close"] + (["reverse"] if len(present) > 1 else [])
            role = rng.choice([r for r in choices if r != roles[-1]])
            subject = a if role == "close" else present[1] if role == "reverse" else ""
        if role == "wide" and i == 0 and stated:
            who = f"{rd.join_names(present)} in view. " if present else ""
            visual = f"Wide shot of {place} {_when(tod)}: {who}{stated}"
        elif role == "wide":
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
        audio = " ".join(f'{who}: "{text}"' for who, text in lines) or f"Ambience: {ambience}."
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


def _unquoted(line: str) -> str:
    """A line of dialogue without the one pair of quotes that may enclose it."""
    for left, right in (('"', '"'), ("\u201c", "\u201d")):
        if len(line) > 1 and line.startswith(left) and line.endswith(right):
            return line[1:-1]
    return line


_CUE = re.compile(r"^[A-Z][A-Z0-9 .'-]*(\([^)]*\))?\s*(:|$)")
_HEADING = re.compile(r"^(INT|EXT|I/E)\b|^SCENE\s+\d", re.IGNORECASE)


def _action(script: str) -> str:
    """The first line of action of a scene's script, verbatim: not its heading, a
    speaker's cue or line, or a parenthetical; "" when it has none."""
    for raw in script.splitlines():
        line = raw.strip()
        if not line or _HEADING.match(line) or _CUE.match(line) or line.startswith(("(", '"')):
            continue
        return line
    return ""


def _interior(scene: Inputs) -> bool:
    """Whether the scene is inside: its heading's ``INT.``/``EXT.`` when the script has one,
    else whether its location names no outdoor place."""
    heading = re.match(r"\s*(INT|EXT|I/E)\b", str(scene.get("script", "")), re.IGNORECASE)
    if heading:
        return heading[1].upper() == "INT"
    words = {rd.singular(w) for w in re.findall(r"[a-z]+", str(scene.get("location", "")).lower())}
    return not words & wd.OUTDOOR


def _ambience(scene: Inputs) -> str:
    """The sound of the scene's place at its time: by the location's words (else the places
    its text names), inside or outside; never a sound of another place."""
    night = any(t in str(scene.get("time_of_day", "")).lower() for t in ("night", "midnight"))
    side = "indoor" if _interior(scene) else "outdoor"
    for text in (str(scene.get("location", "")), " ".join(rd.places(str(scene.get("script", ""))))):
        words = {rd.singular(w) for w in re.findall(r"[a-z]+", text.lower())}
        words |= set(re.findall(r"[a-z]+", text.lower()))
        for names, sound in wd.AMBIENCE:
            if set(names.split()) & words:
                return wd.NIGHT_SOUNDS.get(sound, sound) if night else sound
    return wd.NIGHT_AMBIENCE[side] if night else wd.DEFAULT_AMBIENCE[side]


# -- decompose_shot and construct_camera_tree --------------------------------------------


def _decompose_shot(inputs: Inputs, rng: random.Random) -> Answer:
    """Keeps every field of the given shot it does not write (the brief); frames name only
    characters the brief names; one camera move."""
    shot = dict(_record(inputs, "shot"))
    visual_desc = str(shot["visual_desc"])
    everyone = _names(inputs.get("characters"))
    scene = _record(inputs, "scene") if inputs.get("scene") else {}
    place = rd.the(str(scene.get("location", "scene")))
    where = f"inside {place}" if scene and _interior(scene) else place
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
    ff = f"{framing}, {where} {when}: {ff_who}{start}."
    lf = f"{framing}, {wd.END_FRAMING[move]}, {where} {when}: {lf_who}{end}."
    if role == "wide":  # the master's frames show what the storyboard says happens
        happens = visual_desc.partition(": ")[2].strip()
        if happens:
            ff, lf = f"{ff} {happens}", f"{lf} {happens}"
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
