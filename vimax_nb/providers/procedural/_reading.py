"""Reading rules of the procedural chat model: heuristics over words, shared by the tasks.

They find noun phrases, names, speakers and characters in text, and give characters
their features, with small, predictable rules: no model, no randomness except what a
caller passes in. The words they know are in :mod:`._words`."""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ._words import (
    ABSTRACT,
    ANIMAL_LOOKS,
    ANIMALS,
    ANIMATE,
    BE_HAVE,
    BODY_LOOKS,
    BUILD_CUES,
    COATS,
    COLOURS,
    COMMON,
    EVENTS,
    FACE_CUES,
    FEATHERED,
    GARMENT_CUES,
    GARMENTS,
    HAIR_CUES,
    HUMAN_LOOKS,
    LOOK_ADJECTIVES,
    LOOK_NOUNS,
    MACHINE_LOOKS,
    MACHINES,
    MOODS,
    NAMES,
    NOT_PEOPLE,
    NOT_VERBS,
    PLACE_SUFFIXES,
    PLACES,
    PROPS,
    SMOOTH,
    SPATIAL,
    STOP,
    TITLES,
    VERBS,
    WANT_VERBS,
)

TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|[.,;:!?]")
_SPEAKER_LINE = re.compile(r"^\s*([A-Z][A-Za-z0-9.'\- ]{0,30}?)\s*(?:\([^)]*\))?\s*:\s*(\S.*)$")
_CUE_LINE = re.compile(r"^\s*([A-Z][A-Z0-9.'\- ]{1,30}?)\s*(?:\([^)]*\))?\s*$")
_TITLE = "|".join(sorted(TITLES))
_NAME_WORD = re.compile(rf"\b(?:({_TITLE})\.?\s+)?([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")


@dataclass(frozen=True, slots=True)
class Phrase:
    """An article and up to three words after it: ``a lighthouse keeper``."""

    start: int
    words: tuple[str, ...]
    prev: str
    count: int = 1

    @property
    def end(self) -> int:
        return self.start + 1 + len(self.words)

    @property
    def head(self) -> str:
        return self.words[-1].lower()

    @property
    def bare(self) -> str:
        return " ".join(self.words).lower()

    @property
    def one(self) -> str:
        """The words for one of them: ``two robots`` -> ``robot``."""
        return " ".join([*self.words[:-1], singular(self.words[-1])]).lower()


def singular(word: str) -> str:
    """A plural noun's singular, by rule (``robots`` -> ``robot``); lower-case."""
    w = word.lower()
    if w[:-1] in ANIMATE and w.endswith("s"):
        return w[:-1]
    if w in ANIMATE or not w.endswith("s") or w.endswith("ss"):
        return w
    return w[:-3] + "y" if w.endswith("ies") else w[:-2] if w.endswith("ches") else w[:-1]


def verbish(word: str) -> bool:
    """Whether a word after a noun likely starts a verb phrase (``befriends``, ``named``)."""
    w = word.lower()
    if w in NOT_VERBS or w.endswith("'s"):
        return False
    return w in VERBS or w in BE_HAVE or w.endswith(("ed", "ing")) or _third_person(w)


def _third_person(w: str) -> bool:
    return w.endswith("s") and not w.endswith(("ss", "us", "is"))


def phrases(tokens: Sequence[str]) -> list[Phrase]:
    """Each article (a, an, the, two, three) with up to three words after it, stopping at
    function words and verbs."""
    found = []
    for i, token in enumerate(tokens):
        count = {"a": 1, "an": 1, "the": 1, "two": 2, "three": 3}.get(token.lower(), 0)
        if not count:
            continue
        words: list[str] = []
        for word in tokens[i + 1 : i + 4]:
            if not word[0].isalpha() or word.lower() in STOP:
                break
            if count > 1 and words and _third_person(words[-1].lower()):
                break  # "two friends camp": the plural noun ends the phrase, a verb follows
            if words and verbish(word) and not (count > 1 and _third_person(word.lower())):
                break
            words.append(word)
        if words:
            found.append(Phrase(i, tuple(words), tokens[i - 1].lower() if i else "", count))
    return found


def kind(p: Phrase, tokens: Sequence[str]) -> str:
    """``animate``, ``event``, ``abstract``, ``place`` or ``thing``, by the phrase's noun
    and its neighbours."""
    after = tokens[p.end].lower() if p.end < len(tokens) else ""
    if p.head in ANIMATE or singular(p.head) in ANIMATE or after == "who":
        return "animate"
    if p.head in EVENTS:
        return "event"
    if p.head in ABSTRACT:
        return "abstract"
    if p.head in PLACES or p.prev in SPATIAL:
        return "place"
    head = singular(p.head)
    if head.endswith("er") and len(head) >= 5 and head not in NOT_PEOPLE:
        return "animate"
    return "thing"


def places(text: str) -> list[str]:
    """Places named in ``text`` whose noun is a known place, without their article."""
    tokens = TOKEN.findall(text)
    found = []
    for p in phrases(tokens):
        if p.head in PLACES:
            found.append(p.bare)
        found += [w.lower() for w in p.words[:-1] if w.lower() in PLACES]
    return found


def indefinite(noun: str) -> str:
    """``a`` or ``an`` and the noun."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def the(place: str) -> str:
    """The place with ``the`` in front, once."""
    return place if place.lower().startswith("the ") else f"the {place}"


def mentions(text: str, name: str) -> bool:
    """Whether ``name`` occurs in ``text`` as a whole word, in any case."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def join_names(names: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


SMALL_WORDS = frozenset(
    {"a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "by"}
)


def title_case(words: Sequence[str]) -> str:
    """Words capitalised as a title, small words kept small after the first."""
    return " ".join(
        w.lower() if i and w.lower() in SMALL_WORDS else w[:1].upper() + w[1:]
        for i, w in enumerate(words)
    )


def tone(*texts: str) -> str:
    """``funny``, ``gentle``, ``dark`` or ``plain``, from wishes such as "for children"."""
    text = " ".join(texts).lower()
    for name, cues in (
        ("funny", r"funn|comed|comic|silly|humou?r|light-?hearted"),
        ("gentle", r"child|kids?\b|toddler|gentle|bedtime|family|no violence|young audience"),
        ("dark", r"scary|dark|horror|spooky|grim|noir|thriller"),
    ):
        if re.search(cues, text):
            return name
    return "plain"


@dataclass(slots=True)
class Cast:
    name: str
    desc: str
    source: str = ""
    goal: str = ""


def _given_name(tokens: Sequence[str], p: Phrase) -> tuple[str, int]:
    """A name the idea gives the phrase ("X, a fox" or "a fox named X") and where it ends."""
    after = p.end
    if after + 1 < len(tokens) and tokens[after] in ("named", "called"):
        return tokens[after + 1], after + 2
    name = tokens[p.start - 2] if p.start >= 2 and tokens[p.start - 1] == "," else ""
    if name[:1].isupper() and name.lower() not in COMMON:
        return name, after + (after < len(tokens) and tokens[after] == ",")
    return "", after


def _until(tokens: Sequence[str], start: int, stops: str) -> list[str]:
    end = next((k for k in range(start, len(tokens)) if tokens[k] in stops), len(tokens))
    return list(tokens[start:end])


def joined(words: Sequence[str]) -> str:
    return re.sub(r" ([.,;:!?])", r"\1", " ".join(words))


def _goal(words: Sequence[str], plural: bool) -> str:
    """The base form of a present-tense verb phrase ("learns to fly" -> "learn to fly"),
    or "" when it does not read as something to do ("is afraid", "learned to fly")."""
    first = words[0].lower()
    if first in BE_HAVE or first in ("are", "were") or first.endswith(("ed", "ing")):
        return ""
    if plural or not _third_person(first):
        return joined(words) if plural and first in VERBS | WANT_VERBS else ""
    if first in WANT_VERBS and len(words) > 2 and words[1].lower() == "to":
        return joined(words[2:])
    stem = first[:-3] + "y" if first.endswith("ies") else first[:-1]
    if first.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        stem = first[:-2]
    return joined([stem, *words[1:]])


def _looks_after(tokens: Sequence[str], after: int) -> tuple[str, int]:
    """The looks an idea states right after a phrase (``in a red coat with glasses`` or
    ``, silver-haired, in a red coat,``) as words to add to its description, verbatim,
    and where they end."""
    said = ""
    k = after
    while k < len(tokens) and tokens[k].lower() in ("in", "with", "wearing"):
        end = k + 1
        while end < len(tokens) and tokens[end][0].isalpha() and end - k < 6:
            word = tokens[end].lower()
            if end > k + 1 and ((word in STOP and word not in ("a", "an", "the")) or verbish(word)):
                break
            end += 1
        if not is_look(joined(tokens[k:end])):
            break
        said, k = f"{said} {joined(tokens[k:end])}", end
    comma = k - 1 if k == after and k and tokens[k - 1] == "," else k
    while comma < len(tokens) and tokens[comma] == ",":
        part = _until(tokens, comma + 1, ",.;!?")
        end = comma + 1 + len(part)
        if not part or end >= len(tokens) or tokens[end] != "," or not is_look(joined(part)):
            break
        said, comma = f"{said}, {joined(part)}", end
    if comma != k and said.count(",") and comma < len(tokens):
        k = comma + 1
    return said, k


def cast_of(idea: str, rng: random.Random) -> tuple[list[Cast], list[Phrase], list[str]]:
    """The characters an idea names (at most three, in order; "two robots" are two), each
    with a name (the idea's own, or one drawn from :data:`NAMES`), a description, the
    idea's words for them and, for the first, the goal the idea gives them; at least a
    wanderer. Also returns the idea's phrases and tokens."""
    tokens = TOKEN.findall(idea)
    found = phrases(tokens)
    cast: list[Cast] = []
    heads: set[str] = set()
    for p in found:
        if kind(p, tokens) != "animate" or singular(p.head) in heads or len(cast) == 3:
            continue
        heads.add(singular(p.head))
        name, after = _given_name(tokens, p)
        looks, after = _looks_after(tokens, after)
        nxt = tokens[after].lower() if after < len(tokens) else ""
        words: list[str] = []
        if nxt in ("who", "that"):
            words = _until(tokens, after + 1, ".;!?,")
        elif not cast and nxt and verbish(nxt) and set(tokens[: p.start]) <= {name, ","}:
            words = _until(tokens, after, ".;!?")
        member = Cast(name, indefinite(p.one) + looks, " ".join(tokens[p.start : p.end]))
        member.goal = _goal(words, p.count > 1) if words and not cast else ""
        if words and not member.goal and p.count == 1:
            member.desc += " who " + joined(words)
        cast.append(member)
        for _ in range(min(p.count, 4 - len(cast)) - 1):
            cast.append(Cast("", member.desc))
    free = [n for n in NAMES if n not in {c.name for c in cast}]
    for member, name in zip(cast, rng.sample(free, len(cast)), strict=True):
        member.name = member.name or name
    if not cast:
        cast.append(Cast(rng.choice(free), "a wanderer"))
    return cast, found, tokens


def speaker(line: str) -> tuple[str, str] | None:
    """``("Mara", "Hello")`` for a dialogue line ``MARA: Hello`` (or ``Mara (V.O.): Hello``)."""
    match = _SPEAKER_LINE.match(line)
    if match is None:
        return None
    words = match[1].split()
    if len(words) > 3 or not all(w[0].isupper() for w in words) or words[0].lower() in COMMON:
        return None
    return title_case([w.capitalize() for w in words]), match[2]


def find_characters(text: str) -> list[tuple[str, str]]:
    """``(identifier, description)`` of each character, in order of first appearance."""
    found: dict[str, tuple[int, str]] = {}
    lines = text.splitlines()
    offset = 0
    for k, line in enumerate(lines):
        spoken = speaker(line)
        cue = _CUE_LINE.match(line)
        following = next((x for x in lines[k + 1 :] if x.strip()), "")
        words = cue[1].replace(".", " ").split() if cue else []
        speech = re.search("[a-z]", following) is not None
        if spoken is None and speech and 0 < len(words) <= 3 and words[0].lower() not in COMMON:
            spoken = (title_case([w.capitalize() for w in words]), following)
        if spoken is not None:
            found.setdefault(spoken[0].lower(), (offset, spoken[0]))
        offset += len(line) + 1
    lowercase = set(re.findall(r"\b[a-z][a-z'-]*\b", text))
    seen: dict[str, list[int]] = {}  # first position, count, after a preposition, mid-sentence
    titled: dict[str, str] = {}
    for match in _NAME_WORD.finditer(text):
        word, start = match[2], match.start()
        if word.lower() in COMMON or word.lower() in lowercase:
            continue
        before = text[max(0, start - 24) : start]
        words_before = before.split()
        place = bool(words_before) and words_before[-1].lower() in SPATIAL | {"to", "from"}
        initial = re.search(r"(?:^|[.!?:\"\u201c]\s*|\n\s*)$", before) is not None
        stats = seen.setdefault(word, [start, 0, 0, 0])
        stats[1:] = [stats[1] + 1, stats[2] + place, stats[3] + (not initial)]
        if match[1]:
            titled.setdefault(word, f"{match[1]} {word}")
    for word, (first, count, at_place, inside) in seen.items():
        apposition = re.search(rf"\b{word}, an? [a-z]", text) is not None
        recurs = count >= 2 and inside > 0
        known = word in NAMES or word in titled or apposition or recurs
        suffix = word.lower().endswith(PLACE_SUFFIXES) and word not in NAMES
        if known and at_place * 2 < count and not suffix:
            found.setdefault(word.lower(), (first, titled.get(word, word)))
    names = [name for _, name in sorted(found.values())][:6]
    if not names:
        tokens = TOKEN.findall(text)
        people = [p for p in phrases(tokens) if kind(p, tokens) == "animate"]
        return (
            [(title_case(people[0].words), indefinite(people[0].bare))]
            if people
            else [("Wanderer", "a wanderer")]
        )
    return [(name, _descriptor(text, name)) for name in names]


def _descriptor(text: str, name: str) -> str:
    n = re.escape(name)
    match = re.search(rf"\b{n}, (an? [a-z'-]+(?: [a-z'-]+){{0,8}}?)[,.;:]", text) or re.search(
        rf"\b(an? [a-z'-]+(?: [a-z'-]+){{0,2}}) (?:called|named) {n}\b", text
    )
    return match[1] if match else ""


def is_look(part: str) -> bool:
    """Whether a comma-separated part after a name states a look: ``silver-haired``,
    ``in a red coat``, ``with glasses``, ``60s``, ``tall and thin``."""
    words = re.findall(r"[a-z0-9][a-z0-9'-]*", part.lower())
    if not words or len(words) > 8:
        return False
    if words[0] in ("in", "with", "wearing", "dressed", "carrying", "holding"):
        return any(w in LOOK_NOUNS or singular(w) in LOOK_NOUNS for w in words[1:])
    return all(_look_word(w) or w in ("and", "a", "an", "with") for w in words) and any(
        _look_word(w) for w in words
    )


_LOOK_COLOURS = frozenset(
    re.findall(
        r"\w+",
        "red blue green yellow black white grey gray brown purple pink orange silver golden "
        "gold dark fair long curly straight wavy cropped spiky messy neat",
    )
)


def _look_word(w: str) -> bool:
    return (
        w in LOOK_ADJECTIVES
        or w in LOOK_NOUNS
        or w in _LOOK_COLOURS
        or w.endswith(("-haired", "-eyed", "-bearded", "-skinned", "-faced"))
        or re.fullmatch(r"(?:early|mid|late)?-?\d+s?|(?:early|mid|late)", w) is not None
    )


def stated_looks(text: str, name: str) -> list[str]:
    """The looks ``text`` states for ``name``, verbatim and in order: the parts after
    ``Name,`` (past an ``a/an ...`` description) or inside ``Name (...)`` that read as
    looks, e.g. ``Mara, silver-haired, in a red coat, with glasses, holds up a lamp``."""
    found: list[str] = []
    n = re.escape(name)
    for match in re.finditer(rf"(?<!\w){n}(?!\w)[ \t]*(\(([^)\n]*)\)|,[^\n.;!?:]*)", text, re.I):
        inside = match[2] is not None
        parts = [x.strip() for x in (match[2] if inside else match[1][1:]).split(",")]
        if not inside:
            parts = parts[:-1]  # the last part runs into the sentence (``holds up a lamp``)
            if parts and re.match(r"an? |the ", parts[0]):
                parts = parts[1:]
        for part in parts:
            if is_look(part):
                if part not in found:
                    found.append(part)
            elif not inside:
                break
    return found


def _body(look: str) -> bool:
    low = look.lower()
    return not low.startswith(("in ", "wearing", "dressed", "carrying", "holding")) and (
        not low.startswith("with ") or any(stem in low for stem in BODY_LOOKS)
    )


def features(name: str, desc: str, looks: Sequence[str] = ()) -> tuple[str, str]:
    """Static and dynamic features as plain sentences. The looks a text states (``looks``,
    and any in ``desc``) are kept verbatim; only what they leave out is invented, drawn
    from the name alone, so a character looks the same in every call, and fitting the
    kind of being ``desc`` names (a person, an animal with fur, feathers or skin, or a
    machine)."""
    rng = random.Random(f"features:{name.lower()}")
    base = desc.lower().split(" who ")[0]
    words = set(re.findall(r"[a-z'-]+", base))
    colour, garment, prop = rng.choice(COLOURS), rng.choice(GARMENTS), rng.choice(PROPS)
    animal = next(iter(sorted(words & ANIMALS)), "")
    mood = ""
    if animal:
        coat = "feathers" if animal in FEATHERED else "skin" if animal in SMOOTH else "fur"
        options: tuple[tuple[str, ...], ...] = (COATS[coat], *ANIMAL_LOOKS)
        mood = rng.choice(MOODS)
    else:
        options = MACHINE_LOOKS if words & MACHINES else HUMAN_LOOKS
    drawn = [rng.choice(choices) for choices in options]
    body = [x for x in looks if _body(x)]
    worn = [x for x in looks if not _body(x)]
    stated = " ".join([base, *body]).lower()
    invented = [
        look
        for look, cue in zip(drawn, (HAIR_CUES, BUILD_CUES, FACE_CUES), strict=True)
        if not re.search(cue, stated)
    ]
    said = ", ".join([desc, *body] if desc else body)
    if said and invented:
        static = f"{name} is {said}, with {join_names(invented)}."
    elif said:
        static = f"{name} is {said}."
    else:
        static = f"{name} has {join_names(invented)}."
    dressed = re.search(GARMENT_CUES, " ".join([base, *worn]).lower()) is not None
    if animal:
        doing = [f"looks {mood}"] if dressed else [f"wears a {colour} neckerchief", f"looks {mood}"]
    elif words & MACHINES:
        doing = (
            [f"carries {prop}"]
            if dressed
            else [f"has {colour} paint on its panels", f"carries {prop}"]
        )
    else:
        doing = (
            [f"carries {prop}"] if dressed else [f"wears a {colour} {garment}", f"carries {prop}"]
        )
    if worn:
        dynamic = f"{name}, {', '.join(worn)}, {' and '.join(doing)}."
    else:
        dynamic = f"{name} {' and '.join(doing)}."
    return static, dynamic


def emoji_words(text: str) -> list[str]:
    """The names of the pictographs in ``text``, lower-case: ``🐋🌊`` -> ``["spouting whale",
    "water wave"]``."""
    names = []
    for char in text:
        if unicodedata.category(char) == "So":
            name = unicodedata.name(char, "").lower()
            if name and name not in names:
                names.append(name)
    return names


def dialogue(script: str) -> list[tuple[str, str]]:
    """``(speaker, line)`` of each line of dialogue in ``script``, in order, the line
    verbatim: ``MARA: Hello`` and a cue ``MARA`` over the line ``Hello`` (a parenthetical
    such as ``(quietly)`` between them is skipped)."""
    found = []
    lines = script.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k]
        spoken = speaker(line)
        if spoken is not None:
            found.append(spoken)
            k += 1
            continue
        cue = _CUE_LINE.match(line)
        words = cue[1].replace(".", " ").split() if cue else []
        if cue and 0 < len(words) <= 3 and words[0].lower() not in COMMON:
            j = k + 1
            while j < len(lines) and re.fullmatch(r"\s*\([^)]*\)\s*", lines[j]):
                j += 1
            said = lines[j].strip() if j < len(lines) else ""
            if said and re.search("[a-z]", said) and speaker(said) is None:
                found.append((title_case([w.capitalize() for w in cue[1].split()]), said))
                k = j + 1
                continue
        k += 1
    return found
