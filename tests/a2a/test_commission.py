"""What a message commissions: words, a script, explicit parameters."""

from __future__ import annotations

import pytest
from a2a.types import Message, Part, Role

from vimax_nb.a2a.commission import UnusableMessage, read_commission


def message(*parts: Part) -> Message:
    return Message(role=Role.ROLE_USER, message_id="m", parts=list(parts))


def data(value: dict[str, object]) -> Part:
    part = Part()
    part.data.struct_value.update(value)
    return part


def test_words_are_read_by_the_plain_words_parser() -> None:
    asked = read_commission(
        message(Part(text="a three-scene watercolor video about a fox who learns to fly, seed 7"))
    )
    assert asked.kind == "idea2video"
    assert asked.params == {
        "idea": "A fox who learns to fly",
        "scenes": 3,
        "style": "watercolor",
        "seed": 7,
    }
    assert "3 scenes" in asked.plan
    assert "A fox who learns to fly" in asked.plan


def test_a_script_is_for_script2video_as_text_or_as_a_file() -> None:
    script = "INT. KITCHEN - NIGHT\nANNA pours tea.\n\nEXT. GARDEN - DAWN\nANNA waits."
    as_text = read_commission(message(Part(text=script)))
    assert (as_text.kind, as_text.params) == ("script2video", {"script": script})
    assert "2 scenes" in as_text.plan

    as_file = read_commission(
        message(
            Part(raw=script.encode(), media_type="text/plain", filename="tea.txt"),
            Part(text="gentle, for children"),
        )
    )
    assert as_file.kind == "script2video"
    assert as_file.params == {"script": script, "user_requirement": "gentle, for children"}


def test_a_data_part_sets_parameters_exactly_and_wins_over_words() -> None:
    asked = read_commission(
        message(
            Part(text="a watercolor video about a fox"),
            data({"scenes": 2, "style": "anime", "seconds_per_shot": 1.5}),
        )
    )
    assert asked.params["style"] == "anime"
    assert asked.params["scenes"] == 2
    assert isinstance(asked.params["scenes"], int)
    assert asked.params["seconds_per_shot"] == 1.5

    explicit = read_commission(
        message(data({"kind": "story", "params": {"shots": 3}, "priority": 5}))
    )
    assert (explicit.kind, explicit.params, explicit.priority) == ("story", {"shots": 3}, 5)


@pytest.mark.parametrize(
    ("parts", "says"),
    [
        ((), "does not say what to make"),
        ((Part(text="   "),), "does not say what to make"),
        ((Part(url="https://example.com/script.txt"),), "does not fetch files"),
        ((Part(raw=b"\x89PNG", media_type="image/png"),), "must be a script"),
        ((Part(raw=b"\xff\xfe\xfa", media_type="text/plain"),), "not UTF-8"),
        ((Part(text="please make a video"),), "could not tell what the video should be about"),
        ((data({"kind": 5}),), "'kind' must be"),
    ],
)
def test_a_message_that_says_nothing_usable_is_refused_with_the_reason(
    parts: tuple[Part, ...], says: str
) -> None:
    with pytest.raises(UnusableMessage, match=says):
        read_commission(message(*parts))
