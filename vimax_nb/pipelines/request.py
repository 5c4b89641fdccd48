"""Requests in plain words: "a three-scene watercolor video about a fox who learns to fly".

:func:`parse_request` turns such a sentence into :class:`~.params.Idea2VideoParams`, with a
hosted chat model or, without one, with :func:`parse_request_offline`'s rules;
:func:`describe_plan` says in one line what the parameters will make.

Imports only pydantic, :mod:`.params` and :mod:`vimax_nb.providers.base` (no coordinator,
store, Pillow, PyAV or ``openai``), so the CLI and the launcher forms may use it.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from ..providers.base import ChatModel, ChatRequest
from .params import Idea2VideoParams, ProviderChoice

__all__ = [
    "PARSE_REQUEST_INSTRUCTIONS",
    "STYLES",
    "describe_plan",
    "parse_request",
    "parse_request_offline",
]

PARSE_REQUEST_INSTRUCTIONS = """You turn a request for a short video, written in plain words,
into the parameters of an idea-to-video workflow. Answer with these fields:
- idea: what the video is about, as a clean sentence without the instructions around it
  ("A fox who learns to fly"); never empty.
- style: the visual style asked for (watercolor, anime, pixel art, film noir, ...);
  "cinematic" when none is named.
- user_requirement: the audience and wishes in a few words ("for children, funny, no
  violence"); empty when there are none.
- scenes: how many scenes (1 to 10, default 1).
- shots_per_scene: how many shots in each scene (1 to 24, default 4).
- width and height: the frame size in pixels, even numbers (default 640 x 360; vertical
  means 360 x 640, square 480 x 480, HD or 720p 1280 x 720).
- fps: frames per second (1 to 60, default 12).
- seconds_per_shot: the length of one shot in seconds (above 0, at most 30, default 2).
- seed: a whole number for repeatable results (default 0).
- providers and max_cost: leave them out; they are set by the person, not from the request.
Leave every field the user did not ask for at its default."""

_NUMBERS = {
    "one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_N = r"(\d+(?:\.\d+)?|" + "|".join(_NUMBERS) + r")"
_TIMES = "\N{MULTIPLICATION SIGN}"
_PER = r"(?:per|a|an|each|in each|for each|every|in every)"

STYLES: dict[str, str] = {
    "watercolor": "watercolor", "watercolour": "watercolor", "oil painting": "oil painting",
    "anime": "anime", "pixel art": "pixel art", "film noir": "film noir", "noir": "noir",
    "cinematic": "cinematic", "claymation": "claymation", "stop motion": "stop motion",
    "comic book": "comic book", "comic": "comic", "pencil sketch": "pencil sketch",
    "sketch": "sketch", "pastel": "pastel", "cyberpunk": "cyberpunk", "storybook": "storybook",
    "photorealistic": "photorealistic", "low poly": "low poly", "cartoon": "cartoon",
    "charcoal": "charcoal", "ink": "ink", "gouache": "gouache", "crayon": "crayon",
    "woodcut": "woodcut", "papercut": "papercut", "steampunk": "steampunk",
    "vaporwave": "vaporwave", "black and white": "black and white", "vintage": "vintage",
    "retro": "retro", "3d": "3D", "impressionist": "impressionist", "minimalist": "minimalist",
}  # fmt: skip
"""The styles the offline parser recognises, by how they may be written -> how they are kept."""

_STYLE = "|".join(
    re.escape(k).replace(r"\ ", r"[\s-]") for k in sorted(STYLES, key=len, reverse=True)
)
_WISHES = (
    "short|funny|silly|gentle|sad|scary|spooky|heartwarming|heart-warming|lighthearted|"
    "light-hearted|cute|calm|relaxing|dramatic|epic|educational|happy|dark|whimsical|romantic|"
    "playful|cozy|cosy|exciting|mysterious|quiet|beautiful|moody|uplifting|bittersweet"
)
_SHAPES = {"vertical": (360, 640), "portrait": (360, 640), "square": (480, 480)}
_SHAPES |= {"landscape": (640, 360), "widescreen": (640, 360), "horizontal": (640, 360)}
_SIZES = {"hd": 720, "720p": 720, "1080p": 1080, "full hd": 1080, "4k": 2160}
_MEDIUM = r"(?:videos?|films?|movies?|animations?|clips?|cartoons?|stor(?:y|ies)|tales?|anime)"
_FILLER = frozenset(
    str.split(
        "a an the make me us create generate render produce please i i'd we want wanted would like "
        "need could can you give show write do my our some little kind sort of video videos film "
        "movie animation clip cartoon story tale with and in as for about of where which that "
        "shows showing featuring on it"
    )
)
# Rules that are safe anywhere in a request: (pattern, field), in the order they apply.
_ANYWHERE: tuple[tuple[str, str], ...] = (
    (r"\b(?:with\s+|using\s+)?(?:random\s+)?seed\s*(?:=|:|of|#)?\s*(\d+)\b", "seed"),
    (r"\b(\d+)\s*(?:fps|frames\s+(?:per|a)\s+second)\b", "fps"),
    (rf"\b(?:lasting\s+|about\s+|around\s+)?{_N}[\s-]*(minutes?|mins?|seconds?|secs?|s)"
     rf"(?:[\s-]+long)?\s+(?=(?:[\w-]+\s+){{0,3}}{_MEDIUM}\b)", "total"),
    (rf"\b{_N}[\s-]*(?:seconds?|secs?|s)[\s-]+shots?\b", "seconds"),
    (rf"\b(?:in\s+|with\s+|across\s+|over\s+)?{_N}[\s-]+scenes?(?:[\s-]+long)?\b", "scenes"),
    (rf"\bscenes?\s*[:=]\s*{_N}\b", "scenes"),
    (rf"\b(?:in\s+|with\s+|of\s+)?{_N}[\s-]+shots?(?:\s+{_PER}\s+scene|\s+each)?\b", "shots"),
    (rf"\b{_N}\s*(?:seconds?|secs?|s)\s*(?:(?:{_PER}|for\s+every)\s+shot|each|apiece)\b",
     "seconds"),
    (rf"\b(?:of\s+|lasting\s+)?{_N}\s*(?:seconds?|secs?)\b", "seconds"),
    (r"\b(\d{2,4})\s*[x\u00d7]\s*(\d{2,4})\b", "size"),
    (r"\b(?:in\s+)?(full[\s-]hd|1080p|720p|hd|4k)\b", "hd"),
    (r"\b(?:in\s+)?the\s+style\s+of\s+([^,.;]+?)(?=\s*(?:[,.;]|$|\bfor\b|\bwith\b|\bin\b))",
     "style_of"),
    (rf"\b(?:in\s+(?:a\s+|an\s+)?)?({_STYLE})(?:[\s-]style|\s+look)\b", "style"),
    (rf"\bin\s+(?:a\s+|an\s+)?({_STYLE})(?=\s*(?:[,.;:!?]|$|(?:for|with|and|please)\b))",
     "style"),
    (r"\b(for\s+(?:young\s+|little\s+|small\s+)?(?:children|kids|toddlers|preschoolers|teens|"
     r"teenagers|adults|grown-?ups|families|the\s+whole\s+family|all\s+ages|everyone|bedtime|"
     r"an?\s+(?:young|general|family)\s+audience))\b", "wish"),
    (r"\b(?:with\s+)?((?:no|without)\s+(?:violence|gore|blood|dialogue|words|text|music|"
     r"swearing|scary\s+(?:parts|bits|scenes)))\b", "wish"),
    (r"\b(?:with\s+)?(?:an?\s+)?((?:happy|sad|surprise|twist)\s+ending)\b", "wish"),
    (r"\b((?:kid|child|family)-friendly)\b", "wish"),
    (r"\b(?:make|keep)\s+it\s+(?!a\b|an\b|the\b)([a-z][^,.;]*)", "wish"),
)  # fmt: skip


def parse_request(text: str, chat: ChatModel | None = None, *, seed: int = 0) -> Idea2VideoParams:
    """The Idea2Video parameters a request in plain words asks for.

    With ``chat``, a hosted chat model, asks it (task ``parse_request``, the request as
    ``inputs["request"]``, ``seed`` as the request's seed) and returns its answer, less
    the providers and budget, which only the person asking sets; with ``chat=None``,
    applies :func:`parse_request_offline`. Offline, pass no chat model: the procedural one
    does not answer ``parse_request``. Raises ValueError for a blank request.
    """
    if not text.strip():
        raise ValueError("the request is empty: say what the video should be about")
    if chat is None:
        return parse_request_offline(text)
    request = ChatRequest(
        task="parse_request",
        instructions=PARSE_REQUEST_INSTRUCTIONS,
        inputs={"request": text},
        response_model=Idea2VideoParams,
        seed=seed,
    )
    answer = chat.complete(request)
    return answer.model_copy(update={"providers": ProviderChoice(), "max_cost": None})


def parse_request_offline(text: str) -> Idea2VideoParams:
    """Parameters read from ``text`` by rules, without a model.

    Finds the number of scenes ("three-scene", "3 scenes") and of shots per scene ("six
    shots per scene"), the style (:data:`STYLES`, "in the style of X"), wishes and
    audience ("for children", "no violence", "funny") as ``user_requirement``, the frame
    size ("vertical", "square", "HD", "1280x720"), frames per second, seconds per shot
    ("10 seconds per shot"; "a 30-second video" is shared among the shots) and the seed
    ("seed 7"); the idea is what remains, without filler, capitalised. Style and wish
    words count only around the request ("a funny watercolor video about ...", "..., in
    watercolor", "..., funny"), so that the idea keeps its own words ("a fox who learns
    to sketch"). Raises ValueError when no idea remains or a value is out of range.
    """
    rest = " " + " ".join(text.split()) + " "
    found: dict[str, Any] = {}
    styles: list[str] = []
    wishes: list[str] = []

    def take(match: re.Match[str], field: str) -> str:
        value = match[1]
        if field == "style_of":
            styles.append(value.strip())
        elif field == "style":
            styles.append(_style(value))
        elif field == "wish":
            wishes.append(" ".join(value.lower().split()))
        elif field == "size":
            found["size"] = (int(match[1]), int(match[2]))
        elif field == "hd":
            found["hd"] = _SIZES[re.sub(r"[\s-]+", " ", value.lower())]
        elif field == "total":
            found["total"] = _number(value) * (60 if match[2].lower().startswith("m") else 1)
        else:
            found.setdefault(field, _number(value))
        return " "

    for pattern, field in _ANYWHERE:
        rest = re.sub(pattern, partial(take, field=field), rest, flags=re.IGNORECASE)
    head, tail = _split(rest)
    head = _local(head, styles, wishes, found, whole=True)
    parts = [_local(part, styles, wishes, found, whole=False) for part in re.split(r"[,;:]", tail)]
    leftover = [w for w in re.findall(r"[\w'-]+", head.lower()) if w not in _FILLER]
    if leftover:
        wishes.append(" ".join(leftover))
    idea = _clean(", ".join(p for p in parts if p.strip()))
    if all(w in _FILLER for w in re.findall(r"[\w'-]+", idea.lower())):
        raise ValueError(
            f"could not tell what the video should be about in {text!r}: describe the idea, "
            "e.g. 'a watercolor video about a fox who learns to fly'"
        )
    params: dict[str, Any] = {"idea": idea}
    if styles:
        params["style"] = " ".join(dict.fromkeys(styles))
    if wishes:
        params["user_requirement"] = ", ".join(dict.fromkeys(wishes))
    for field, key in (("scenes", "scenes"), ("shots", "shots_per_scene"), ("fps", "fps")):
        if field in found:
            params[key] = int(found[field])
    if "seed" in found:
        params["seed"] = int(found["seed"])
    width, height = found.get("size", (640, 360))
    if "hd" in found:
        width, height = found["hd"] * 16 // 9, found["hd"]
    shape = found.get("shape")
    if shape is not None and ("size" in found or "hd" in found):
        width, height = _orient(width, height, shape)
    elif shape is not None:
        width, height = _SHAPES[shape]
    if "size" in found or "hd" in found or shape is not None:
        params["width"], params["height"] = width - width % 2, height - height % 2
    if "seconds" in found:
        params["seconds_per_shot"] = float(found["seconds"])
    elif "total" in found:
        shots = params.get("scenes", 1) * params.get("shots_per_scene", 4)
        params["seconds_per_shot"] = min(30.0, max(0.5, round(found["total"] / shots, 2)))
    return Idea2VideoParams.model_validate(params)


def describe_plan(params: Idea2VideoParams) -> str:
    """What the parameters will make, in one line, with multiplication signs: "1 scene x 4
    shots, watercolor, 640x360 at 12 fps, 2 s a shot: 'A fox who learns to fly'" (ideas
    longer than 60 characters are cut at a word with an ellipsis)."""
    scenes = f"{params.scenes} scene{'s' if params.scenes != 1 else ''}"
    shots = f"{params.shots_per_scene} shot{'s' if params.shots_per_scene != 1 else ''}"
    parts = [f"{scenes} {_TIMES} {shots}", params.style]
    if params.user_requirement:
        parts.append(params.user_requirement)
    parts.append(f"{params.width}{_TIMES}{params.height} at {params.fps} fps")
    parts.append(f"{params.seconds_per_shot:g} s a shot")
    if params.seed:
        parts.append(f"seed {params.seed}")
    idea = " ".join(params.idea.split())
    if len(idea) > 60:
        idea = idea[:59].rsplit(" ", 1)[0] + "…"
    return f"{', '.join(parts)}: '{idea}'"


def _number(word: str) -> float:
    return float(_NUMBERS.get(word.lower(), 0) or word)


def _style(word: str) -> str:
    return STYLES[re.sub(r"[\s-]+", " ", word.lower())]


def _orient(width: int, height: int, shape: str) -> tuple[int, int]:
    long, short = max(width, height), min(width, height)
    if shape == "square":
        return short, short
    return (short, long) if _SHAPES[shape][0] < _SHAPES[shape][1] else (long, short)


def _split(text: str) -> tuple[str, str]:
    """The words around the request (before "video about") and the idea after them."""
    marker = re.search(
        rf"\b{_MEDIUM}\b[\s,]*(?:about|of|where|in which|showing|featuring|on|with|that shows)\b",
        text,
        re.IGNORECASE,
    ) or re.search(r"\babout\b", text, re.IGNORECASE)
    return (text[: marker.end()], text[marker.end() :]) if marker else ("", text)


def _local(
    text: str, styles: list[str], wishes: list[str], found: dict[str, Any], *, whole: bool
) -> str:
    """Takes style, wish and shape words from the words around the request (``whole``) or
    from a part of the idea made only of such words; returns what is left."""
    words = rf"(?:{_STYLE}|{_WISHES}|{'|'.join(_SHAPES)})"
    if not whole and not re.fullmatch(
        rf"\s*(?:and\s+|in\s+|as\s+)?(?:an?\s+)?(?:{words}[\s,]*(?:and\s+)?)+(?:style|format|video)?\s*",
        text,
        re.IGNORECASE,
    ):
        return text

    def take(match: re.Match[str]) -> str:
        word = match[0].lower()
        if word in _SHAPES:
            found["shape"] = word
        elif re.fullmatch(_STYLE, word, re.IGNORECASE):
            styles.append(_style(word))
        else:
            wishes.append(word)
        return " "

    return re.sub(rf"\b{words}\b", take, text, flags=re.IGNORECASE)


def _clean(idea: str) -> str:
    """The idea without leading requests and connectors or trailing punctuation."""
    idea = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(idea.split()))
    idea = re.sub(r"(?:,\s*){2,}", ", ", idea)
    lead = (
        r"^(?:[,;:.\s]+|please\b|(?:can|could|would)\s+you\b|(?:make|create|generate|render|"
        r"produce|give|show|write)(?:\s+(?:me|us))?\b|i\s+(?:want|need|would\s+like)\b|"
        r"i'd\s+like\b|(?:an?\s+)?(?:video|film|movie|animation|clip)\s+(?:about|of)\b|about\b|"
        r"showing\b|"
        r"featuring\b|where\b|that\s+shows\b)\s*"
    )
    trail = r"(?:[\s,;:.!?\-\u2013\u2014]+|\s(?:and|with|in|for|please|as)|,\s*please)$"
    previous = None
    while previous != idea:
        previous = idea
        idea = re.sub(lead, "", idea, flags=re.IGNORECASE)
        idea = re.sub(trail, "", idea, flags=re.IGNORECASE)
    return idea[:1].upper() + idea[1:]
