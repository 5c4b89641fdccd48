"""Word lists, sentence templates and reading heuristics of the procedural chat model.

Templates are ``str.format`` strings over named slots: ``{H}`` the hero's name, ``{hd}``
the hero's description ("a lighthouse keeper"), ``{A}``/``{ad}``/``{A_intro}`` the ally,
``{place}``/``{Place}`` ("the lighthouse"), ``{thing}``/``{the_thing}``, ``{trouble}``,
``{dream}`` and ``{goal}`` (verb phrases in the base form), ``{tod}`` and ``{other}``.

The reading part finds noun phrases, names and speakers in text with small, predictable
rules: no model, no randomness except what a caller passes in."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


NAMES = (
    "Mara", "Tomas", "Ines", "Arlo", "Nell", "Oskar", "Rosa", "Idris", "Milo", "Sana",
    "Felix", "Ada", "Kofi", "Lena", "Ravi", "Elsie", "Bram", "Noor", "Theo", "Emil",
    "Zara", "Otto", "Lumi", "Hugo", "Yara", "Finn", "Maeve", "Ansel", "Dara", "Soren",
    "Tove", "Jasper", "Lio", "Pia", "Anouk", "Cyrus", "Edda", "Juno", "Olin", "Vera",
)  # fmt: skip

ANIMALS = _set(
    "fox whale cat dog bear wolf rabbit bunny mouse owl crow raven bird fish turtle tortoise "
    "frog deer horse pony unicorn lion tiger elephant penguin duck goose hedgehog squirrel "
    "otter badger octopus dolphin shark snail spider bee ant butterfly moth bat monkey goat "
    "sheep cow pig chicken hen rooster seal lamb kitten puppy cub calf snake lizard crab "
    "dragon giraffe zebra koala panda parrot sparrow swan heron beetle firefly"
)
MACHINES = _set("robot android machine automaton drone cyborg")
PEOPLE = _set(
    "keeper girl boy woman man child kid baby king queen prince princess knight wizard witch "
    "pirate sailor fisherman farmer baker detective alien astronaut scientist inventor painter "
    "artist musician dancer singer teacher student doctor nurse soldier hunter thief ghost "
    "monster giant fairy elf dwarf troll mermaid grandmother grandfather grandma grandpa "
    "mother father mom dad sister brother friend friends stranger orphan traveller traveler "
    "wanderer explorer captain mayor chef cook clown poet writer monk nun priest shepherd "
    "mechanic pilot miner gardener librarian postman courier spy samurai ninja cowboy warrior "
    "hero villain twins couple family lady gentleman neighbour neighbor tailor blacksmith"
)
ANIMATE = ANIMALS | MACHINES | PEOPLE
# "-er" words that are not people, so "a keeper"-like guessing does not take them.
NOT_PEOPLE = _set(
    "water river tower paper letter mirror corner summer winter weather thunder silver "
    "flower shelter cellar computer container harbor number order border danger power "
    "answer matter ladder hammer feather finger dinner chapter lantern pepper slipper "
    "sweater glacier desert center centre theater theatre"
)
PLACES = _set(
    "lighthouse forest woods sea ocean beach shore coast harbour harbor island village town "
    "city castle palace tower library school museum garden park mountain mountains hill "
    "valley river lake desert cave farm field meadow station market kitchen attic cellar "
    "house cottage cabin ship boat train moon planet jungle swamp bakery shop cafe street "
    "bridge workshop observatory temple circus theatre theater lab laboratory hospital zoo "
    "pond glacier reef sky rooftop alley subway port dock pier mill barn orchard square hall"
)
OUTDOOR = _set(
    "forest woods sea ocean beach shore coast harbour harbor island village town city park "
    "mountain mountains hill valley river lake desert field meadow moon planet jungle swamp "
    "street bridge pond glacier reef sky rooftop alley port dock pier orchard garden"
)
EVENTS = _set(
    "storm flood fire blizzard snowstorm hurricane drought war earthquake eclipse festival "
    "fog rain tide wave night winter"
)
ABSTRACT = _set("dark light love world way truth past future end time life moment sound")
SPATIAL = _set(
    "in at on near under inside beside by across through into beyond behind above below "
    "around along toward towards over upon within outside"
)
STOP = _set(
    "in on at of with without to from for by near under over into onto across through "
    "during after before beyond behind beside between inside outside around about above "
    "below toward towards against along among upon like and or but so yet nor because "
    "while when where whose who whom that which if until as than is are was were be been "
    "being has have had do does did can could will would shall should may might must not "
    "named called his her their its our my your this these those there here then now again "
    "still also just only every each some"
)
VERBS = _set(
    "find meet learn discover build try want need go get make take become lose save help "
    "fight escape search travel fly swim sing dance see hear run live love befriend protect "
    "return dream hope wish fall rise climb cross leave open steal hide chase follow"
)
# Words ending in -s, -ed or -ing that are nouns, not verbs, inside a noun phrase.
NOT_VERBS = _set(
    "king ring thing wing string building painting evening morning spring swing bed red "
    "sled shed glass boss moss grass dress chess bus gas lens iris atlas canvas compass "
    "princess mistress actress goddess witness ceiling darling sibling wedding pudding"
)
BE_HAVE = _set(
    "is are was were has have had can cannot can't could isn't wasn't doesn't never "
    "always lives loves"
)
WANT_VERBS = _set("wants hopes tries longs needs decides plans wishes yearns")
COMMON = _set(
    "a an the and or but so yet if then than when while where what who whom whose why how "
    "once one two three four five six seven eight nine ten i you he she it we they me him "
    "her us them my your his its our their this that these those there here yes no not "
    "oh ah well now soon later again still just only even also every each some any all "
    "more most many much few nobody everyone everything nothing something someone day "
    "after before during at in on of to for from with without by into over under up down "
    "out off as like together naturally secretly years meanwhile suddenly finally later "
    "monday tuesday wednesday thursday friday saturday sunday january february march april "
    "may june july august september october november december int ext scene chapter act "
    "title note location time setting logline story fade cut dissolve end narrator voice "
    "god mr mrs ms dr sir lady lord hello hi hey okay ok please thank thanks sorry look "
    "wait hold come go stop listen let don't can't i'm it's we're you're that's same "
    "another who's do did does is are was were be"
)
TITLES = _set("Captain Doctor Dr Mr Mrs Ms Professor Aunt Uncle King Queen Sir Lady")
PLACE_SUFFIXES = ("ton", "ville", "burg", "land", "shire", "ford", "port", "polis", "stan")

COMPANIONS = (
    "an old crow", "a kind neighbour", "a curious child", "a retired sailor",
    "a wandering musician", "a clever mouse", "a patient tortoise", "a shy inventor",
)  # fmt: skip
DEFAULT_PLACES = (
    "the old harbour", "the edge of the forest", "the hill above the village",
    "the quiet valley", "the bend in the river", "the market square",
)  # fmt: skip
THINGS = (
    "an old map", "a brass compass", "a paper kite", "a bottle with a note inside",
    "a small silver key", "a cracked lantern", "a feather as long as an arm",
)  # fmt: skip
DREAMS = (
    "see what lay beyond the horizon", "do something nobody thought possible",
    "find a place to belong", "be brave, just once", "make one true friend",
)  # fmt: skip
TROUBLES = {
    "gentle": ("rain shower", "gust of wind", "long, dark night"),
    "funny": ("rain shower", "gust of wind", "flock of very loud geese"),
    "dark": ("storm", "fog", "long winter"),
    "plain": ("storm", "flood", "long winter"),
}
LOGLINE_VERBS = ("must find a way to", "sets out to", "will stop at nothing to")
TODS = ("morning", "evening", "night", "afternoon")

SETUP = (
    "{H}, {hd}, lived near {place}, where every day began with the same quiet chores. "
    "More than anything, {H} wanted to {dream}.",
    "Nobody paid much attention to {H}, {hd}, who spent long hours around {place} watching "
    "the sky change colour. Secretly, {H} hoped one day to {dream}.",
    "At {place} there lived {H}, {hd}. At the top of every page of an old notebook, "
    "{H} had written the same wish: to {dream}.",
)
INCIDENT = (
    "Then, one {tod}, {A_intro} appeared at {place} with {thing}, and nothing was "
    "ordinary after that.",
    "Everything changed the {tod} {H} found {thing} half-buried near {place}. Beside it "
    "waited {A_intro} who seemed to have been expecting {H}.",
    "It began with a sound {H} had never heard before. Following it past {place}, {H} met "
    "{A_intro} who knew a secret about {thing}.",
)
RISING = (
    "{H} and {A} set out together. They argued about the way, shared what little food they "
    "had, and slowly learned to trust each other.",
    "Day after day, {H} practised while {A} kept watch, and {the_thing} never left {H}'s side.",
    "The path grew harder. {H} stumbled more than once, but each time {A} found a way to "
    "help, and {H} began to believe it was possible to {dream}.",
)
CLIMAX = {
    "plain": (
        "Then the {trouble} came. At {place}, with everything at stake, {H} stood firm, and "
        "{A} did not let go.",
        "On the night of the {trouble}, {H} had to choose between staying safe and trying one "
        "last time. {H} chose to try.",
    ),
    "gentle": (
        "Then a {trouble} rolled in, and {H} felt very small. But {A} stayed close, and "
        "together they were braver than either had been alone.",
        "When the {trouble} came, {H} was scared, just a little. {A} held on tight, and {H} "
        "remembered every small step that had led here.",
    ),
    "dark": (
        "The {trouble} broke over {place} like a warning. In the dark, {H} heard {A} call "
        "out, and ran toward the sound instead of away from it.",
        "Nothing moved in the {trouble} except {H}. {A} was somewhere out there, and {H} "
        "would not leave {place} alone.",
    ),
    "funny": (
        "Naturally, the {trouble} arrived at the worst possible moment, right in the middle of "
        "a very dignified speech by {H}. {A} laughed so hard that {H} forgot to be afraid.",
        "The plan was perfect until the {trouble} turned up. {H} tripped over {the_thing}, "
        "{A} tripped over {H}, and somehow that was exactly what they needed.",
    ),
}
RESOLUTION = (
    "And in the end, {H} did {goal}. {Place} looked the same as ever, but {H} saw it with "
    "new eyes.",
    "When morning came, {H} and {A} sat together at {place}. {H} had done it: {H} had found "
    "a way to {goal}.",
    "Years later, people at {place} still told the story of how {H} came to {goal}, and "
    "how {A} had been there all along.",
)
EXTRA_CAST = " Along the way they were joined by {C}, {cd}."

DIALOGUE = {
    "setup": (
        "Another quiet day at {place}.",
        "Do you ever wonder what's out there, {other}?",
        "Same as yesterday. Same as always.",
        "Someday things will be different.",
    ),
    "incident": (
        "Who are you?",
        "Where did you find {thing}?",
        "I think it's meant for us, {other}.",
        "Wait. Did you hear that?",
    ),
    "rising": (
        "We keep going. Together.",
        "I'm not sure I can do this, {other}.",
        "Just one more try.",
        "Look, we're nearly there.",
    ),
    "climax": (
        "Hold on!",
        "{other}, don't let go!",
        "It's now or never.",
        "I'm not afraid anymore.",
    ),
    "resolution": (
        "We did it, {other}.",
        "I'll never forget this.",
        "Same place, but everything looks different now.",
        "Thank you for staying.",
    ),
}
BEATS = ("setup", "incident", "rising", "climax", "resolution")
TIMES = ("morning", "day", "afternoon", "dusk", "night")
TIME_CUES = (
    ("dawn", "dawn"), ("morning", "morning"), ("afternoon", "afternoon"), ("evening", "dusk"),
    ("dusk", "dusk"), ("sunset", "dusk"), ("night", "night"), ("dark", "night"),
)  # fmt: skip
DEFAULT_LOCATIONS = ("harbour", "forest clearing", "village square", "attic", "hilltop")

AMBIENCE = (
    ("sea ocean harbour harbor beach lighthouse shore coast island ship boat pier dock port",
     "waves breaking and distant gulls"),
    ("forest woods jungle meadow garden park field orchard clearing",
     "wind in the leaves and birdsong"),
    ("city street station market town alley square subway", "distant traffic and voices"),
    ("river lake pond swamp", "running water"),
    ("mountain mountains hill hilltop valley desert glacier sky", "a steady wind"),
)  # fmt: skip
DEFAULT_AMBIENCE = "quiet room tone and a ticking clock"

SOLO_ACTIONS = (
    "stands alone, looking into the distance",
    "walks slowly across the frame",
    "sits very still, thinking",
    "works at something small with careful hands",
)
GROUP_ACTIONS = (
    "stand close together",
    "talk quietly, faces lit by the same light",
    "walk side by side",
    "turn toward the same sound",
)
EXPRESSIONS = (
    "eyes bright with hope",
    "jaw set with determination",
    "a small, uncertain smile",
    "brow furrowed in thought",
    "wide-eyed with surprise",
)
REACTIONS = ("listens closely", "answers with a nod", "looks back steadily", "almost smiles")
START_POSES = ("standing still", "looking down", "turned half away", "caught mid-step")
END_POSES = ("facing forward", "looking up", "smiling faintly", "leaning closer")
SOLO_MOTIONS = (
    "{X} turns toward the light",
    "{X} takes a slow step forward",
    "{X} looks up and breathes out",
    "{X} shifts weight and settles",
)
PAIR_MOTIONS = (
    "{X} reaches toward {Y}",
    "{X} and {Y} move closer together",
    "{Y} answers and {X} nods",
)
EMPTY_MOTIONS = ("light shifts across the {loc}", "dust drifts through the air of the {loc}")

CAMERA_MOVES = (
    "static", "pan left", "pan right", "tilt up", "tilt down",
    "zoom in", "zoom out", "dolly in", "dolly out",
)  # fmt: skip
MOVES_BY_ROLE = {
    "wide": ("static", "pan left", "pan right", "dolly in", "zoom out", "tilt down"),
    "close": ("static", "zoom in", "dolly in", "tilt up"),
    "reverse": ("static", "pan left", "pan right", "dolly out"),
}
END_FRAMING = dict(zip(CAMERA_MOVES, (
    "same framing", "framing moved left", "framing moved right", "framing raised",
    "framing lowered", "framed tighter", "framed wider", "camera closer", "camera further back",
), strict=True))  # fmt: skip

# Features are drawn from the name alone, so a character looks the same in every call.
HUMAN_LOOKS = (
    ("short copper hair", "long black hair in a braid", "curly grey hair", "cropped brown hair",
     "wavy blond hair", "a shaved head"),
    ("a wiry build", "a tall, broad-shouldered build", "a small, sturdy build", "a lanky build"),
    ("a freckled, narrow face", "a round face with dimples", "a weathered, kind face",
     "sharp cheekbones and dark eyes", "a scar across one eyebrow"),
)  # fmt: skip
FEATHERED = _set("owl crow raven bird parrot sparrow swan heron duck goose penguin hen chicken")
SMOOTH = _set("whale fish dolphin shark seal octopus frog snake lizard turtle tortoise crab snail")
COATS = {
    "fur": ("russet fur", "silver-grey fur", "sandy fur with white patches", "thick black fur"),
    "feathers": ("glossy black feathers", "speckled brown feathers", "snow-white feathers"),
    "skin": ("blue-grey skin", "mottled green skin", "sleek, dark skin"),
}
ANIMAL_LOOKS = (
    ("a slender build", "a heavy, rounded build", "a small, quick build"),
    ("bright amber eyes", "dark, gentle eyes", "a pale mark above one eye", "one scarred eye"),
)
MOODS = ("curious", "watchful", "cheerful", "wary", "sleepy")
MACHINE_LOOKS = (
    ("a dented copper shell", "a white enamel casing", "a rust-streaked steel frame"),
    ("a tall, spindly build", "a squat, barrel-shaped build"),
    ("round glowing eyes", "a single blue lens for a face", "a cracked visor"),
)  # fmt: skip
COLOURS = ("moss-green", "rust-red", "navy", "mustard-yellow", "charcoal", "sky-blue", "plum")
GARMENTS = ("wool coat", "raincoat", "knitted scarf", "canvas jacket", "hooded cloak", "waistcoat")
PROPS = ("a brass lantern", "a worn satchel", "a walking stick", "a notebook", "a tin whistle")


# -- reading text: heuristics over words, shared by the tasks ----------------------------

TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|[.,;:!?]")
_SPEAKER_LINE = re.compile(r"^\s*([A-Z][A-Za-z.'\- ]{0,30}?)\s*(?:\([^)]*\))?\s*:\s*(\S.*)$")
_CUE_LINE = re.compile(r"^\s*([A-Z][A-Z.'\- ]{1,30}?)\s*(?:\([^)]*\))?\s*$")
_TITLE = "|".join(sorted(TITLES))
_NAME_WORD = re.compile(rf"\b(?:({_TITLE})\.?\s+)?([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")


# -- reading text ------------------------------------------------------------------------


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
            if not word[0].isalpha() or word.lower() in STOP or (words and verbish(word)):
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


def title_case(words: Sequence[str]) -> str:
    """Words capitalised as a title, small words kept small after the first."""
    small = {"a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "with", "by"}
    return " ".join(
        w.lower() if i and w.lower() in small else w[:1].upper() + w[1:]
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
        nxt = tokens[after].lower() if after < len(tokens) else ""
        words: list[str] = []
        if nxt in ("who", "that"):
            words = _until(tokens, after + 1, ".;!?,")
        elif not cast and nxt and verbish(nxt) and set(tokens[: p.start]) <= {name, ","}:
            words = _until(tokens, after, ".;!?")
        member = Cast(name, indefinite(p.one), " ".join(tokens[p.start : p.end]))
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


def features(name: str, desc: str) -> tuple[str, str]:
    """Static and dynamic features as plain sentences: drawn from the name alone, so a
    character looks the same in every call, and fitting the kind of being ``desc`` names
    (a person, an animal with fur, feathers or skin, or a machine)."""
    rng = random.Random(f"features:{name.lower()}")
    words = set(desc.lower().split(" who ")[0].split())
    colour, garment, prop = rng.choice(COLOURS), rng.choice(GARMENTS), rng.choice(PROPS)
    animal = next(iter(sorted(words & ANIMALS)), "")
    if animal:
        coat = "feathers" if animal in FEATHERED else "skin" if animal in SMOOTH else "fur"
        looks: tuple[tuple[str, ...], ...] = (COATS[coat], *ANIMAL_LOOKS)
        dynamic = f"{name} wears a {colour} neckerchief and looks {rng.choice(MOODS)}."
    else:
        looks = MACHINE_LOOKS if words & MACHINES else HUMAN_LOOKS
        dynamic = f"{name} wears a {colour} {garment} and carries {prop}."
    a, b, c = (rng.choice(options) for options in looks)
    if words & MACHINES:
        dynamic = f"{name} has {colour} paint on its panels and carries {prop}."
    static = (
        f"{name} is {desc}, with {a}, {b} and {c}." if desc else f"{name} has {a}, {b} and {c}."
    )
    return static, dynamic
