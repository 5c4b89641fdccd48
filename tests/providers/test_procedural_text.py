"""The procedural chat model: shapes, sizes, determinism and the invariants the pipelines
rely on (names, storyboards, camera trees, camera moves). Its answers are plain data;
these tests validate them into ViMax's models, as the agents do."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from vimax_nb.pipelines.models import (
    CameraTree,
    CharacterInScene,
    CharacterList,
    Scene,
    Script,
    ShotBriefDescription,
    ShotDescription,
    Story,
    Storyboard,
)
from vimax_nb.providers.base import ChatModel, ChatRequest, ProviderError
from vimax_nb.providers.procedural.text import CAMERA_MOVES, TASKS, ProceduralChatModel

M = TypeVar("M", bound=BaseModel)

IDEAS = [
    "A lighthouse keeper befriends a whale during a storm",
    "a fox who learns to fly",
    "Two robots fall in love",
    "Mara, a retired sailor, finds a map in the old library",
    "A robot named Bolt who is afraid of the dark",
    "The girl who wants to climb the mountain with her grandfather and a goat",
    "rain",
]

SCREENPLAY = """INT. KITCHEN - NIGHT

Anna stirs a pot. Ben enters, soaked to the bone.

ANNA
You're late.

BEN (O.S.)
The bus broke down on Monday.

ANNA: Sit down, then.
DR. LEE: Nobody move.

CUT TO:

EXT. STREET - NIGHT
Captain Ahab walks past the window. Ahab stops.
"""

MODEL = ProceduralChatModel()


def ask(task: str, inputs: dict[str, Any], model: type[M], seed: int = 0) -> M:
    return MODEL.complete(ChatRequest(task, "ignored", inputs, model, seed=seed))


def story_of(idea: str, seed: int = 0, requirement: str = "") -> Story:
    inputs = {"idea": idea, "user_requirement": requirement, "style": "watercolor"}
    return ask("develop_story", inputs, Story, seed)


def characters_of(story: Story, seed: int = 0) -> list[CharacterInScene]:
    found = ask("extract_characters", {"text": story.text, "kind": "story"}, CharacterList, seed)
    return found.characters


def script_of(story: Story, characters: list[CharacterInScene], scenes: int) -> Script:
    inputs = {
        "story": story.model_dump(),
        "characters": [c.model_dump() for c in characters],
        "scenes": scenes,
        "user_requirement": "",
    }
    return ask("write_script", inputs, Script)


def board_of(
    scene: Scene, characters: list[CharacterInScene], shots: int, seed: int = 0
) -> Storyboard:
    inputs = {
        "scene": scene.model_dump(),
        "characters": [c.model_dump() for c in characters],
        "shots": shots,
        "user_requirement": "",
        "style": "anime",
    }
    return ask("design_storyboard", inputs, Storyboard, seed)


def decompose(
    shot: ShotBriefDescription, characters: list[CharacterInScene], scene: Scene, seed: int = 0
) -> ShotDescription:
    inputs = {
        "shot": shot.model_dump(),
        "characters": [c.model_dump() for c in characters],
        "scene": scene.model_dump(),
    }
    return ask("decompose_shot", inputs, ShotDescription, seed)


def tree_of(shots: list[dict[str, Any]]) -> CameraTree:
    return ask("construct_camera_tree", {"shots": shots}, CameraTree)


def moves_in(text: str) -> list[str]:
    return [m for m in CAMERA_MOVES if re.search(rf"\b{m}\b", text)]


def check_tree(tree: CameraTree, shots: list[tuple[int, int]]) -> None:
    """The invariants of a camera tree for shots given as (idx, cam_idx) in order."""
    cam_of = dict(shots)
    by_idx = {c.idx: c for c in tree.cameras}
    assert sorted(by_idx) == sorted(set(cam_of.values()))
    assert len(by_idx) == len(tree.cameras)
    covered = sorted(i for c in tree.cameras for i in c.active_shot_idxs)
    assert covered == [idx for idx, _ in shots], "every shot in exactly one camera"
    for camera in tree.cameras:
        assert camera.active_shot_idxs == sorted(camera.active_shot_idxs)
        assert all(cam_of[i] == camera.idx for i in camera.active_shot_idxs)
        if camera.idx == cam_of[0]:
            assert camera.parent_cam_idx is None
            assert camera.parent_shot_idx is None
            continue
        assert camera.parent_cam_idx is not None
        assert camera.parent_shot_idx is not None
        assert camera.parent_shot_idx < camera.active_shot_idxs[0], "parent shot comes first"
        assert camera.parent_shot_idx == camera.active_shot_idxs[0] - 1
        assert cam_of[camera.parent_shot_idx] == camera.parent_cam_idx
        assert camera.parent_cam_idx in by_idx


def test_is_a_chat_model_and_knows_its_tasks() -> None:
    assert isinstance(MODEL, ChatModel)
    assert set(TASKS) >= {
        "develop_story",
        "extract_characters",
        "write_script",
        "design_storyboard",
        "decompose_shot",
        "construct_camera_tree",
    }
    assert len(CAMERA_MOVES) == 9
    assert "dolly out" in CAMERA_MOVES


@pytest.mark.parametrize("idea", IDEAS)
def test_develop_story_writes_five_paragraphs_with_named_characters(idea: str) -> None:
    story = story_of(idea)
    paragraphs = story.text.split("\n\n")
    assert len(paragraphs) == 5
    assert all(p.strip() and p.rstrip().endswith((".", "!", "?")) for p in paragraphs)
    assert story.title
    assert story.title[0].isupper()
    assert story.logline.endswith(".")
    assert not re.search(r"[{}]", story.text), "a template slot was left unfilled"
    names = [c.identifier_in_scene for c in characters_of(story)]
    assert len(names) >= 2
    hero = names[0]
    assert story.logline.startswith(hero)
    assert all(story.text.count(name) >= 2 for name in names[:2])


def test_develop_story_uses_the_idea() -> None:
    story = story_of("A lighthouse keeper befriends a whale during a storm")
    assert story.title == "The Lighthouse Keeper and the Whale"
    assert "a lighthouse keeper" in story.text
    assert "a whale" in story.text
    assert "storm" in story.text
    fox = story_of("a fox who learns to fly")
    assert fox.title == "The Fox Who Learns to Fly"
    assert "learn to fly" in fox.text
    assert "a fox" in fox.text
    named = story_of("Mara, a retired sailor, finds a map in the old library", seed=4)
    assert named.text.startswith("Mara") or "Mara, a retired sailor" in named.text
    assert "old library" in named.text
    assert story_of("rain").text  # no cast in the idea: a wanderer and a companion


def test_develop_story_keeps_every_place_and_each_of_a_plural_cast() -> None:
    camp = story_of("Two friends camp in a tent beside a campfire and a lake")
    assert all(f"the {place}" in camp.text for place in ("tent", "campfire", "lake"))
    assert camp.text.count(", a friend") >= 2
    assert "friends camp" not in camp.text
    train = story_of("An old train carries a bear through the mountains")
    assert "the old train" in train.text
    assert "the mountains" in train.text
    sailors = story_of("Three old sailors sing")
    assert sailors.logline.count("an old sailor") == 2


def test_develop_story_is_gentle_for_children() -> None:
    harsh = ("everything at stake", "like a warning", "Nothing moved in the")
    texts = [story_of("a wolf who guards a village", s, "for children").text for s in range(12)]
    assert not any(phrase in text for text in texts for phrase in harsh)
    plain = [story_of("a wolf who guards a village", s, "").text for s in range(12)]
    assert any(phrase in text for text in plain for phrase in (*harsh[:1], "chose to try"))


def test_same_seed_same_answers_and_other_seeds_other_stories() -> None:
    for idea in IDEAS:
        assert story_of(idea, 3).model_dump_json() == story_of(idea, 3).model_dump_json()
    stories = {story_of("a fox who learns to fly", seed).text for seed in range(6)}
    assert len(stories) == 6
    assert story_of(IDEAS[0], 0).text != story_of(IDEAS[0], 1).text


def test_every_task_is_deterministic() -> None:
    story = story_of(IDEAS[0], 5)
    characters = characters_of(story, 5)
    script = script_of(story, characters, 3)
    again = script_of(story, characters, 3)
    assert script.model_dump_json() == again.model_dump_json()
    board = board_of(script.scenes[1], characters, 6, seed=2)
    assert board == board_of(script.scenes[1], characters, 6, seed=2)
    shot = decompose(board.shots[2], characters, script.scenes[1], seed=2)
    assert shot == decompose(board.shots[2], characters, script.scenes[1], seed=2)


def test_answers_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    code = (
        "from vimax_nb.providers.base import ChatRequest\n"
        "from vimax_nb.pipelines.models import Story\n"
        "from vimax_nb.providers.procedural.text import ProceduralChatModel\n"
        "inputs = {'idea': 'a fox who learns to fly', 'user_requirement': '', 'style': ''}\n"
        "r = ChatRequest('develop_story', '', inputs, Story, seed=11)\n"
        "print(ProceduralChatModel().complete(r).model_dump_json())\n"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(root)}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(run.stdout.strip())
    inputs = {"idea": "a fox who learns to fly", "user_requirement": "", "style": ""}
    assert outputs == {ask("develop_story", inputs, Story, seed=11).model_dump_json()}


@pytest.mark.parametrize("idea", IDEAS)
def test_extracted_names_are_the_names_the_story_gave(idea: str) -> None:
    story = story_of(idea, 8)
    characters = characters_of(story)
    assert [c.idx for c in characters] == list(range(len(characters)))
    assert 1 <= len(characters) <= 6
    for c in characters:
        assert c.identifier_in_scene in story.text
        assert c.static_features.endswith(".")
        assert c.dynamic_features.endswith(".")
        assert c.static_features.startswith(c.identifier_in_scene)
    first = min(story.text.index(c.identifier_in_scene) for c in characters)
    assert story.text.index(characters[0].identifier_in_scene) == first
    assert story.logline.startswith(characters[0].identifier_in_scene)


def test_features_fit_the_kind_of_being_and_depend_on_the_name_only() -> None:
    story = story_of("a fox who learns to fly", 1)
    fox = characters_of(story)[0]
    assert "a fox" in fox.static_features
    assert "fur" in fox.static_features
    robot = characters_of(story_of("A robot named Bolt who is afraid of the dark"))[0]
    assert robot.identifier_in_scene == "Bolt"
    assert "robot" in robot.static_features
    assert "hair" not in robot.static_features
    one = ask(
        "extract_characters", {"text": "ANNA: Hi.\nBEN: Hello.", "kind": "script"}, CharacterList
    )
    two = ask(
        "extract_characters", {"text": "BEN: Hey.\nANNA: Go!", "kind": "script"}, CharacterList
    )
    anna = {c.identifier_in_scene: c for c in two.characters}["Anna"]
    assert one.characters[0].static_features == anna.static_features


def test_extract_characters_finds_the_speakers_of_a_screenplay() -> None:
    found = ask("extract_characters", {"text": SCREENPLAY, "kind": "script"}, CharacterList)
    names = [c.identifier_in_scene for c in found.characters]
    assert names == ["Anna", "Ben", "Dr. Lee", "Captain Ahab"]
    assert [c.idx for c in found.characters] == [0, 1, 2, 3]
    assert all(c.is_visible for c in found.characters)


def test_extract_characters_skips_places_days_and_common_words() -> None:
    text = (
        "Once upon a time, Tom lived in Paris with his cat. Tom loved Paris. One day, Tom met "
        "Lucy, a baker, who sold bread in London. Lucy and Tom became friends. On Tuesday "
        "they went to London. Then they rested."
    )
    found = ask("extract_characters", {"text": text, "kind": "story"}, CharacterList)
    assert [c.identifier_in_scene for c in found.characters] == ["Tom", "Lucy"]
    assert "a baker" in found.characters[1].static_features


def test_extract_characters_keeps_between_one_and_six() -> None:
    speakers = ["ANNA", "BEN", "CLEO", "DMITRI", "ESME", "FARID", "GRETA", "HUGH"]
    text = "\n".join(f"{name}: Line {i}." for i, name in enumerate(speakers))
    found = ask("extract_characters", {"text": text, "kind": "script"}, CharacterList)
    assert [c.identifier_in_scene for c in found.characters] == [s.title() for s in speakers[:6]]
    nobody = "the sea was calm. nothing happened at all."
    alone = ask("extract_characters", {"text": nobody, "kind": "story"}, CharacterList)
    assert len(alone.characters) == 1
    assert alone.characters[0].idx == 0


@pytest.mark.parametrize("scenes", [1, 2, 3, 5, 7])
def test_write_script_makes_exactly_the_scenes_asked_in_story_order(scenes: int) -> None:
    story = story_of(IDEAS[0], 2)
    characters = characters_of(story)
    names = {c.identifier_in_scene for c in characters}
    script = script_of(story, characters, scenes)
    assert len(script.scenes) == scenes
    assert script.title == story.title
    assert [s.idx for s in script.scenes] == list(range(scenes))
    sentences = re.split(r"(?<=[.!?])\s+", story.text.replace("\n\n", " "))
    assert sentences[0] in script.scenes[0].script
    assert sentences[-1] in script.scenes[-1].script
    positions = [
        story.text.replace("\n\n", " ").index(s.script.splitlines()[1][:40]) for s in script.scenes
    ]
    assert positions == sorted(positions)
    for scene in script.scenes:
        assert scene.location
        assert scene.time_of_day
        assert scene.characters
        assert set(scene.characters) <= names
        dialogue = [line for line in scene.script.splitlines() if re.match(r"^[A-Z .']+: \S", line)]
        assert 2 <= len(dialogue) <= 4
        speakers = {line.split(":")[0] for line in dialogue}
        assert speakers <= {name.upper() for name in scene.characters}


@pytest.mark.parametrize("shots", [1, 2, 4, 7])
def test_design_storyboard_makes_exactly_the_shots_asked(shots: int) -> None:
    story = story_of(IDEAS[0], 6)
    characters = characters_of(story)
    scene = script_of(story, characters, 2).scenes[1]
    board = board_of(scene, characters, shots)
    assert [s.idx for s in board.shots] == list(range(shots))
    assert [s.is_last for s in board.shots] == [False] * (shots - 1) + [True]
    cams = [s.cam_idx for s in board.shots]
    assert cams[0] == 0
    assert sorted(set(cams)) == list(range(len(set(cams))))
    assert max(cams) <= 2
    for shot in board.shots:
        assert scene.location in shot.visual_desc
        assert any(name in shot.visual_desc for name in scene.characters)
        assert shot.audio_desc
    spoken = [s.audio_desc for s in board.shots if '"' in s.audio_desc]
    if shots > 1:
        assert spoken, "the scene's dialogue is heard"
        assert all(s.split(":")[0].upper() in scene.script for s in spoken)


def test_decompose_shot_keeps_the_brief_and_uses_one_camera_move() -> None:
    story = story_of(IDEAS[1], 3)
    characters = characters_of(story)
    seen_moves: set[str] = set()
    for scene in script_of(story, characters, 3).scenes:
        for brief in board_of(scene, characters, 6).shots:
            shot = decompose(brief, characters, scene)
            assert (
                ShotBriefDescription.model_validate(
                    shot.model_dump(include=set(ShotBriefDescription.model_fields))
                )
                == brief
            )
            moves = moves_in(shot.motion_desc)
            assert len(moves) == 1, shot.motion_desc
            seen_moves.update(moves)
            assert shot.ff_desc != shot.lf_desc
            named = {
                i for i, c in enumerate(characters) if c.identifier_in_scene in brief.visual_desc
            }
            assert set(shot.ff_vis_char_idxs) <= named
            assert set(shot.lf_vis_char_idxs) <= named
            assert shot.lf_vis_char_idxs
            assert shot.variation_type in ("small", "medium", "large")
            assert shot.variation_reason
    assert len(seen_moves) >= 3


def test_decompose_shot_accepts_a_full_shot_description() -> None:
    scene = Scene(idx=0, location="harbour", characters=["Ana"], script="ANA: Hello.")
    character = CharacterInScene(
        idx=0, identifier_in_scene="Ana", static_features="Ana.", dynamic_features="Coat."
    )
    brief = ShotBriefDescription(idx=0, is_last=True, cam_idx=0, visual_desc="Wide shot of Ana.")
    shot = decompose(brief, [character], scene)
    again = ask(
        "decompose_shot",
        {
            "shot": shot.model_dump(),
            "characters": [character.model_dump()],
            "scene": scene.model_dump(),
        },
        ShotDescription,
    )
    brief_fields = set(ShotBriefDescription.model_fields)
    assert again.model_dump(include=brief_fields) == brief.model_dump()
    assert len(moves_in(again.motion_desc)) == 1
    assert shot.lf_vis_char_idxs == [0]


def test_camera_tree_from_the_whole_chain() -> None:
    for seed, idea in enumerate(IDEAS):
        story = story_of(idea, seed)
        characters = characters_of(story, seed)
        for scene in script_of(story, characters, 2).scenes:
            shots = [
                decompose(s, characters, scene).model_dump()
                for s in board_of(scene, characters, 6, seed).shots
            ]
            tree = tree_of(shots)
            check_tree(tree, [(s["idx"], s["cam_idx"]) for s in shots])


@pytest.mark.parametrize(
    "cams", [[0], [0, 0, 0], [0, 1, 0, 2, 1], [3, 1, 1, 3, 0, 2], [0, 1, 2, 0, 1, 2, 1]]
)
def test_camera_tree_invariants(cams: list[int]) -> None:
    shots = [
        {"idx": i, "cam_idx": c, "is_last": False, "visual_desc": ""} for i, c in enumerate(cams)
    ]
    tree = tree_of(list(reversed(shots)))
    check_tree(tree, list(enumerate(cams)))
    assert tree.cameras[0].idx == cams[0]


def test_camera_tree_parents_are_the_shot_just_before() -> None:
    shots = [{"idx": i, "cam_idx": c} for i, c in enumerate([0, 1, 0, 2, 1])]
    tree = {c.idx: c for c in tree_of(shots).cameras}
    assert (tree[0].parent_cam_idx, tree[0].parent_shot_idx) == (None, None)
    assert (tree[1].parent_cam_idx, tree[1].parent_shot_idx) == (0, 0)
    assert (tree[2].parent_cam_idx, tree[2].parent_shot_idx) == (0, 2)
    assert tree[1].active_shot_idxs == [1, 4]


@pytest.mark.parametrize(
    ("shots", "message"),
    [
        ([], "non-empty"),
        ([{"idx": 1, "cam_idx": 0}], "0..0"),
        ([{"idx": 0, "cam_idx": 0}, {"idx": 0, "cam_idx": 1}], "each once"),
        ([{"idx": 0, "cam_idx": 0}, {"idx": 2, "cam_idx": 1}], "0..1"),
        ([{"idx": 0}], "cam_idx"),
        (["shot"], "cam_idx"),
    ],
)
def test_camera_tree_rejects_bad_shots(shots: list[Any], message: str) -> None:
    with pytest.raises(ProviderError, match=re.escape(message)) as caught:
        tree_of(shots)
    assert caught.value.retryable is False


@pytest.mark.parametrize("task", ["paint_a_mural", "parse_request"])
def test_unknown_task_lists_the_known_ones(task: str) -> None:
    with pytest.raises(ProviderError) as caught:
        ask(task, {"request": "a fox"}, Story)
    assert caught.value.retryable is False
    assert task in str(caught.value)
    assert all(known in str(caught.value) for known in TASKS)


def test_wrong_response_model_is_a_provider_error() -> None:
    inputs = {"idea": "a fox", "user_requirement": "", "style": ""}
    with pytest.raises(ProviderError, match="develop_story") as caught:
        ask("develop_story", inputs, CharacterList)
    assert caught.value.retryable is False
    tree = {"shots": [{"idx": 0, "cam_idx": 0}]}
    with pytest.raises(ProviderError, match="construct_camera_tree"):
        ask("construct_camera_tree", tree, Storyboard)


@pytest.mark.parametrize(
    ("task", "inputs"),
    [
        ("develop_story", {}),
        ("develop_story", {"idea": "   "}),
        ("write_script", {"story": {"title": "t", "logline": "l", "text": "x"}, "scenes": 0}),
        ("design_storyboard", {"scene": {"idx": 0}, "shots": 3}),
        ("design_storyboard", {"scene": "the harbour", "shots": 3}),
        ("decompose_shot", {"shot": {"visual_desc": "Wide shot."}, "scene": "the harbour"}),
    ],
)
def test_bad_inputs_are_provider_errors(task: str, inputs: dict[str, Any]) -> None:
    with pytest.raises(ProviderError, match=task) as caught:
        ask(task, inputs, Story)
    assert caught.value.retryable is False


def test_answers_are_json_round_trippable() -> None:
    story = story_of(IDEAS[0])
    assert Story.model_validate(json.loads(story.model_dump_json())) == story


def test_storyboard_films_each_speaker_and_numbers_cameras_in_order() -> None:
    people = [
        CharacterInScene(idx=i, identifier_in_scene=n, static_features=".", dynamic_features=".")
        for i, n in enumerate(["Ana", "Ben", "Cleo"])
    ]
    script = "EXT. HARBOUR - DAY\nThe boats rock.\n\nBEN: You came.\nANA: I said I would."
    scene = Scene(idx=0, location="harbour", characters=["Ana", "Ben"], script=script)
    board = board_of(scene, people, 3)
    assert [s.cam_idx for s in board.shots] == [0, 1, 2]
    wide, ben, ana = board.shots
    assert wide.visual_desc.startswith("Wide shot of the harbour")
    assert "Ana and Ben" in wide.visual_desc
    assert "Cleo" not in " ".join(s.visual_desc for s in board.shots)
    assert ben.audio_desc == 'Ben: "You came."'
    assert ben.visual_desc.startswith("Over-the-shoulder shot from behind Ana")
    assert ben.visual_desc.endswith(
        tuple(
            f"Ben {r}."
            for r in (
                "listens closely",
                "answers with a nod",
                "looks back steadily",
                "almost smiles",
            )
        )
    )
    assert ana.audio_desc == 'Ana: "I said I would."'
    assert ana.visual_desc.startswith("Close-up of Ana in the harbour")
    shots = [decompose(s, people, scene).model_dump() for s in board.shots]
    check_tree(tree_of(shots), [(0, 0), (1, 1), (2, 2)])
    assert all(2 not in s["lf_vis_char_idxs"] for s in shots)


THREE_SCENES = """INT. CAVE - NIGHT
Mara, silver-haired, in a red coat, with glasses, holds up a lantern. Tom follows.

MARA: Did you hear that?
TOM
(whispering)
It's only water, I promise.

EXT. BEACH - DAWN
The tide is out.

TOM: Look, the boat!
MARA (V.O.): We made it. We really made it.

INT. KITCHEN - NIGHT
They sit by the stove.

TOM (quietly): Thank you, Mara.
"""
THREE_SCENES_LINES = [
    'Mara: "Did you hear that?"',
    'Tom: "It\'s only water, I promise."',
    'Tom: "Look, the boat!"',
    'Mara: "We made it. We really made it."',
    'Tom: "Thank you, Mara."',
]


def script_scenes(script: str) -> list[Scene]:
    """The scenes of a script as Script2Video splits them (the heading starts a scene)."""
    parts = re.split(r"\n(?=(?:INT|EXT)\. )", script.strip())
    scenes = []
    for i, part in enumerate(parts):
        heading, _, body = part.partition("\n")
        place, _, when = heading.split(". ", 1)[1].partition(" - ")
        scenes.append(
            Scene(idx=i, location=place.lower(), time_of_day=when.lower(), script=body.strip())
        )
    return scenes


@pytest.mark.parametrize(("shots", "extra"), [(4, ""), (2, ""), (1, ""), (3, "\nMARA: Sixth.")])
def test_every_script_line_is_in_exactly_one_shot_verbatim_in_order(shots: int, extra: str) -> None:
    script = THREE_SCENES + extra
    expected = [*THREE_SCENES_LINES, *(['Mara: "Sixth."'] if extra else [])]
    found = ask("extract_characters", {"text": script, "kind": "script"}, CharacterList)
    characters = found.characters
    audio: list[str] = []
    for scene in script_scenes(script):
        for brief in board_of(scene, characters, shots).shots:
            audio.append(decompose(brief, characters, scene).audio_desc)
    heard = [(k, line) for line in expected for k, a in enumerate(audio) if line in a]
    assert [line for _, line in heard] == expected, "each line in exactly one shot"
    positions = [(k, audio[k].index(line)) for k, line in heard]
    assert positions == sorted(positions), "in the script's order"
    assert len(expected) == (6 if extra else 5)


def test_stated_looks_are_kept_verbatim_and_not_replaced() -> None:
    found = ask("extract_characters", {"text": THREE_SCENES, "kind": "script"}, CharacterList)
    mara = {c.identifier_in_scene: c for c in found.characters}["Mara"]
    looks = f"{mara.static_features} {mara.dynamic_features}"
    for stated in ("silver-haired", "in a red coat", "with glasses"):
        assert stated in looks
    assert " hair" not in mara.static_features, "no invented hair"
    assert not re.search(r"\bwears\b|coat(?! )", mara.dynamic_features.replace("red coat", ""))
    tom = {c.identifier_in_scene: c for c in found.characters}["Tom"]
    assert "hair" in tom.static_features, "what is not stated is still invented"
    paren = "MARA (60s, grey-bearded, in a yellow raincoat)\nHello there."
    one = ask("extract_characters", {"text": paren, "kind": "script"}, CharacterList)
    c = one.characters[0]
    assert "60s" in c.static_features
    assert "grey-bearded" in c.static_features
    assert "in a yellow raincoat" in c.dynamic_features
    idea = "an old woman, silver-haired, in a red coat, with glasses, finds a map"
    story = story_of(idea)
    hero = characters_of(story)[0]
    both = f"{hero.static_features} {hero.dynamic_features}"
    assert all(s in both for s in ("silver-haired", "in a red coat", "with glasses"))


def test_generated_scripts_never_repeat_a_line() -> None:
    for seed, idea in enumerate([*IDEAS, "a cat and a dog who share a garden"]):
        story = story_of(idea, seed)
        characters = characters_of(story, seed)
        for scenes in (3, 5, 12, 40):
            script = script_of(story, characters, scenes)
            lines = [
                line.split(": ", 1)[1]
                for s in script.scenes
                for line in s.script.splitlines()
                if re.match(r"^[A-Z .']+: \S", line)
            ]
            assert len(lines) >= 2 * scenes
            assert len(lines) == len(set(lines)), (idea, scenes)


@pytest.mark.parametrize("idea", ["🐋🌊🏠", "?!...", "a", "🙂", "the"])
def test_every_idea_gets_a_title(idea: str) -> None:
    story = story_of(idea)
    assert story.title.strip()
    assert story.title[0].isupper()
    assert story.text
    assert story_of("🐋🌊🏠").title != "Untitled Story"
    assert "Whale" in story_of("🐋🌊🏠").title


def test_ambience_fits_the_place_and_time() -> None:
    def ambience(location: str, time_of_day: str = "day", heading: str = "") -> str:
        scene = Scene(
            idx=0, location=location, time_of_day=time_of_day, script=f"{heading}Rain falls."
        )
        shots = board_of(scene, [], 3).shots
        sounds = [s.audio_desc for s in shots if s.audio_desc.startswith("Ambience")]
        assert sounds
        return " ".join(sounds).lower()

    cave = ambience("cave", "night", "INT. CAVE - NIGHT\n")
    assert "clock" not in cave
    assert re.search(r"drip|echo", cave)
    assert re.search(r"wave|gull", ambience("beach"))
    assert re.search(r"wave|gull", ambience("the old lighthouse", "dusk"))
    assert re.search(r"traffic|car|siren", ambience("city street", "night"))
    assert re.search(r"leaves|bird|owl|cricket", ambience("forest"))
    for place in ("kitchen", "attic", "house", "unknown place", "scene 2"):
        assert "clock" not in ambience(place)
        assert "clock" not in ambience(place, "night")


def test_interior_and_time_of_day_are_kept() -> None:
    story = story_of(IDEAS[0], 1)
    characters = characters_of(story)
    for scene in script_of(story, characters, 4).scenes:
        heading = scene.script.splitlines()[0]
        assert re.match(r"^(INT|EXT)\. ", heading)
        assert heading.endswith(scene.time_of_day.upper())
    cave = Scene(idx=0, location="cave", time_of_day="night", script="TOM: Hello?")
    tom = CharacterInScene(
        idx=0, identifier_in_scene="Tom", static_features="Tom.", dynamic_features="."
    )
    shot = decompose(board_of(cave, [tom], 2).shots[1], [tom], cave)
    assert "inside the cave at night" in shot.ff_desc
