"""Providers as a server reports them: misconfiguration is never silent, nothing falls
back to another provider, and a run that needs a provider that is not ready fails at
once with the reason."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from vimax_nb.protocol import AgentRecord, ProviderStatus, WorkflowState

from .conftest import post_json, record_of, small_params

IDEA = {"kind": "idea2video", "params": small_params(idea="A lighthouse keeper")}


@pytest.fixture
def providers_file(tmp_path: Path) -> Path | None:
    """No providers file unless a test says otherwise."""
    return None


@pytest.fixture
def jp_server_config(
    vimax_workdir: Path, providers_file: Path | None, request: pytest.FixtureRequest
) -> dict[str, Any]:
    vimax: dict[str, Any] = {"workdir": str(vimax_workdir), "probe_providers": False}
    vimax.update(getattr(request, "param", {}))
    if providers_file is not None:
        vimax["providers_file"] = str(providers_file)
    return {"ServerApp": {"jpserver_extensions": {"vimax_nb.server": True}}, "VimaxApp": vimax}


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_CLOUD_PROJECT", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)


async def _statuses(jp_fetch: Any) -> list[ProviderStatus]:
    response = await jp_fetch("vimax", "api", "providers")
    return [ProviderStatus.model_validate(p) for p in json.loads(response.body)["providers"]]


async def _agent(jp_fetch: Any, name: str) -> AgentRecord:
    response = await jp_fetch("vimax", "api", "agents", name)
    return AgentRecord.model_validate_json(response.body)


async def test_by_default_every_role_is_procedural_and_ready(jp_fetch: Any) -> None:
    statuses = await _statuses(jp_fetch)
    assert [(s.role, s.provider, s.ready, s.default) for s in statuses] == [
        ("chat", "procedural", True, True),
        ("image", "procedural", True, True),
        ("video", "procedural", True, True),
    ]
    painter = await _agent(jp_fetch, "frame_painter")
    assert [(p.role, p.provider, p.model) for p in painter.providers] == [
        ("image", "procedural", "procedural-image")
    ]


@pytest.mark.parametrize("jp_server_config", [{"video_provider": "google"}], indirect=True)
async def test_a_provider_without_its_key_is_reported_and_its_runs_fail_at_once(
    jp_fetch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    video = await _agent(jp_fetch, "video_generator")
    [status] = video.providers
    assert (status.provider, status.ready) == ("google", False)
    assert "GEMINI_API_KEY" in str(status.problem)
    assert any("default video provider 'google' is not ready" in r.message for r in caplog.records)

    record = record_of(await post_json(jp_fetch, "vimax", "api", "workflows", body=IDEA))
    assert record.state == WorkflowState.failed
    assert "the video provider 'google' is not ready" in record.message
    assert "GEMINI_API_KEY" in record.message
    # a workflow may still pick a provider that is ready: nothing else is broken
    procedural = {**IDEA, "params": {**IDEA["params"], "providers": {"video": "procedural"}}}
    started = record_of(await post_json(jp_fetch, "vimax", "api", "workflows", body=procedural))
    assert started.state != WorkflowState.failed


@pytest.mark.parametrize("jp_server_config", [{"image_provider": "dalle"}], indirect=True)
async def test_an_unknown_provider_name_is_reported_with_the_choices(jp_fetch: Any) -> None:
    statuses = await _statuses(jp_fetch)
    [image] = [s for s in statuses if s.role == "image" and s.default]
    assert image.provider == "dalle"
    assert "unknown image provider 'dalle': choose one of procedural, openai, google" in str(
        image.problem
    )
    record = record_of(await post_json(jp_fetch, "vimax", "api", "workflows", body=IDEA))
    assert record.state == WorkflowState.failed
    assert "unknown image provider 'dalle'" in record.message


class TestProvidersFile:
    @pytest.fixture
    def providers_file(self, tmp_path: Path) -> Path:
        path = tmp_path / "providers.yaml"
        path.write_text(
            "video_generator:\n  class_path: tools.VideoGeneratorVeoGoogleAPI\n"
            "  max_requests_per_minute: fast\n"
        )
        return path

    async def test_every_default_fails_with_the_files_error(self, jp_fetch: Any) -> None:
        statuses = await _statuses(jp_fetch)
        defaults = [s for s in statuses if s.default]
        assert {s.provider for s in defaults} == {"providers_file"}
        assert all("requests_per_minute" in str(s.problem) for s in defaults)
        record = record_of(await post_json(jp_fetch, "vimax", "api", "workflows", body=IDEA))
        assert record.state == WorkflowState.failed
        assert "providers.yaml" in record.message


class TestProvidersFileWithChoices:
    @pytest.fixture
    def providers_file(self, tmp_path: Path) -> Path:
        path = tmp_path / "providers.toml"
        path.write_text(
            '[chat]\nprovider = "procedural"\n\n[[also.video]]\nprovider = "replicate"\n'
            'model = "kwaivgi/kling-v2.1"\n'
        )
        return path

    async def test_more_choices_are_listed_with_their_problems(self, jp_fetch: Any) -> None:
        statuses = await _statuses(jp_fetch)
        [kling] = [s for s in statuses if s.provider == "replicate"]
        assert (kling.role, kling.model, kling.ready, kling.default) == (
            "video",
            "kwaivgi/kling-v2.1",
            False,
            False,
        )
        assert "REPLICATE_API_TOKEN" in str(kling.problem)
