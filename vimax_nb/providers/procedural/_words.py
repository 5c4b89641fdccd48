"""Word lists and sentence templates of the procedural chat model.

Templates are ``str.format`` strings over named slots: ``{H}`` the hero's name, ``{hd}``
the hero's description ("a lighthouse keeper"), ``{A}``/``{ad}``/``{A_intro}`` the ally,
``{place}``/``{Place}`` ("the lighthouse"), ``{thing}``/``{the_thing}``, ``{trouble}``,
``{dream}`` and ``{goal}`` (verb phrases in the base form), ``{tod}`` and ``{other}``.

The word sets also tell the reading rules (:mod:`._reading`) what a word is: an animal,
a place, a verb, a function word, and so on."""

from __future__ import annotations


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
    "street bridge pond glacier reef sky rooftop alley port dock pier orchard garden lighthouse"
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
SCENERY = (
    " Not far from {place} were {others}.",
    " From {place} one could see {others}.",
    " {Place} lay close to {others}.",
)

DIALOGUE = {
    "setup": (
        "Another quiet day at {place}.",
        "Do you ever wonder what's out there, {other}?",
        "Same as yesterday. Same as always.",
        "Someday things will be different.",
        "Nothing ever happens here, {other}.",
        "I know every stone of {place} by heart.",
    ),
    "incident": (
        "Who are you?",
        "Where did you find {thing}?",
        "I think it's meant for us, {other}.",
        "Wait. Did you hear that?",
        "{other}, come and look at this.",
        "That wasn't here yesterday.",
    ),
    "rising": (
        "We keep going. Together.",
        "I'm not sure I can do this, {other}.",
        "Just one more try.",
        "Look, we're nearly there.",
        "Which way now, {other}?",
        "My feet hurt, but I'm not stopping.",
    ),
    "climax": (
        "Hold on!",
        "{other}, don't let go!",
        "It's now or never.",
        "I'm not afraid anymore.",
        "Stay with me, {other}!",
        "Here it comes!",
    ),
    "resolution": (
        "We did it, {other}.",
        "I'll never forget this.",
        "Same place, but everything looks different now.",
        "Thank you for staying.",
        "Let's go home, {other}.",
        "It was worth it. All of it.",
    ),
}
DIALOGUE_TAGS = (
    "Really.", "Listen.", "Come on.", "I mean it.", "Believe me.", "Look.", "Trust me.",
    "Honestly.", "Right.", "Well.",
)  # fmt: skip
"""Said before a line when every plain line of its beat is already spoken in the script."""
BEATS = ("setup", "incident", "rising", "climax", "resolution")
TIMES = ("morning", "day", "afternoon", "dusk", "night")
TIME_CUES = (
    ("dawn", "dawn"), ("morning", "morning"), ("afternoon", "afternoon"), ("evening", "dusk"),
    ("dusk", "dusk"), ("sunset", "dusk"), ("night", "night"), ("dark", "night"),
)  # fmt: skip
DEFAULT_LOCATIONS = ("harbour", "forest clearing", "village square", "attic", "hilltop")

# The sound of a place, by the words of its location (first match wins): a cave drips,
# the sea has waves and gulls, a street has traffic. Never a place-unrelated default.
AMBIENCE = (
    ("cave cavern grotto tunnel mine", "water dripping and a hollow echo"),
    ("sea ocean harbour harbor beach lighthouse shore coast island ship boat pier dock port "
     "reef cliff bay", "waves breaking and distant gulls"),
    ("city street station market town alley square subway road bus car",
     "distant traffic and voices"),
    ("forest woods jungle meadow garden park field orchard clearing farm barn",
     "wind in the leaves and birdsong"),
    ("river lake pond swamp stream waterfall", "running water"),
    ("mountain mountains hill hilltop valley desert glacier sky rooftop",
     "a steady wind"),
    ("kitchen bakery cafe restaurant", "a kettle on the stove and the clink of dishes"),
    ("library museum school classroom temple church hall", "a hushed hall and soft footsteps"),
    ("workshop lab laboratory factory mill", "the hum of machines and a tool set down"),
    ("train", "wheels rattling over the rails"),
    ("attic cellar basement", "old boards creaking"),
    ("house cottage cabin room bedroom apartment flat home hallway office shop",
     "the soft hum of a quiet room"),
)  # fmt: skip
NIGHT_SOUNDS = {
    "wind in the leaves and birdsong": "crickets, an owl and wind in the leaves",
    "distant traffic and voices": "a far-off siren and a car passing",
    "waves breaking and distant gulls": "waves breaking in the dark",
}
"""The night sound of a place whose sound changes after dark."""
NIGHT_AMBIENCE = {"outdoor": "crickets and a soft night wind", "indoor": "a hush, the house asleep"}
"""The sound of a place the location words do not name, at night."""
DEFAULT_AMBIENCE = {"outdoor": "a light breeze", "indoor": "the soft hum of a quiet room"}
"""The sound of a place the location words do not name, inside or outside."""

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

# Stated looks ("silver-haired", "in a red coat", "with glasses") are kept verbatim; these
# words tell a look from other words after a name, and which kind of look it is.
LOOK_NOUNS = _set(
    "hair beard moustache mustache eyes eye face freckles scar scars skin fur feathers "
    "glasses spectacles goggles monocle eyepatch hat cap beret bonnet helmet hood scarf "
    "coat overcoat raincoat jacket cloak cape dress gown skirt shirt blouse sweater jumper "
    "cardigan vest waistcoat suit uniform apron overalls trousers jeans boots shoes sandals "
    "gloves mittens tie bowtie earrings necklace ring bracelet braid braids ponytail bun "
    "curls wig mask robe kimono sari shawl tunic jumpsuit armour armor backpack satchel "
    "cane crutch umbrella headphones collar neckerchief paint shell"
)
LOOK_ADJECTIVES = _set(
    "old young elderly tall short stout thin slim slender bald tiny small big burly lanky "
    "wiry skinny plump pale freckled bearded grey gray blonde blond ginger broad stocky "
    "hunched frail muscular wrinkled barefoot teenage middle-aged"
)
BODY_LOOKS = ("hair", "bald", "haired", "head", "beard", "moustache", "mustache", "eye",
              "face", "freckle", "scar", "skin", "fur", "feather", "braid", "ponytail", "curls",
              "bun", "cheek", "wrinkled")  # fmt: skip
"""Stems of words that make a look a static feature (a body) rather than a worn one."""
HAIR_CUES = (
    r"hair|bald|haired|shaved head|braid|ponytail|curls|fur\b|feathers|skin\b|shell|casing|"
    r"steel frame"
)
BUILD_CUES = (
    r"\b(?:tall|short|stout|thin|slim|slender|tiny|small|big|burly|lanky|wiry|skinny|plump|"
    r"broad|stocky|hunched|frail|muscular|build|built)\b"
)
FACE_CUES = r"face|eyes?\b|eyed|beard|moustache|mustache|scar|freckle|cheek|lens|visor"
GARMENT_CUES = (
    r"\b(?:wearing|dressed)\b|coat|jacket|cloak|cape|dress|gown|skirt|shirt|"
    r"sweater|jumper|cardigan|waistcoat|suit|uniform|apron|overalls|robe|kimono|tunic|"
    r"neckerchief|paint"
)
