"""The layers import one way: each layer and front end, imported in a fresh process, loads
only what it should (see docs/architecture.md, "Layers")."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SERVER_HALF = ("vimax_nb.server", "vimax_nb.store", "vimax_nb.coordinator")
MEDIA = ("PIL", "av")
A2A = ("a2a", "google.protobuf")


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def offenders(modules: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))


CASES = {
    "the protocol and the shared leaf": (
        "import vimax_nb.protocol, vimax_nb.shared",
        (
            "vimax_nb.store",
            "vimax_nb.coordinator",
            "vimax_nb.providers",
            "vimax_nb.pipelines",
            "vimax_nb.server",
            "vimax_nb.client",
            "vimax_nb.widgets",
            "vimax_nb.cli",
        ),
    ),
    "the store": (
        "import vimax_nb.store",
        (
            "vimax_nb.coordinator",
            "vimax_nb.providers",
            "vimax_nb.pipelines",
            "vimax_nb.server",
            "vimax_nb.client",
            *MEDIA,
        ),
    ),
    "the coordinator": (
        "import vimax_nb.coordinator",
        (
            "vimax_nb.providers",
            "vimax_nb.pipelines",
            "vimax_nb.server",
            "vimax_nb.client",
            *MEDIA,
        ),
    ),
    "import vimax_nb": (
        "import vimax_nb",
        (
            "ipywidgets",
            "websockets",
            "IPython",
            *MEDIA,
            *SERVER_HALF,
            *A2A,
            "vimax_nb.client",
            "vimax_nb.a2a",
        ),
    ),
    "the server extension": (
        "import vimax_nb.server, vimax_nb.server.app, vimax_nb.server.handlers",
        (
            "vimax_nb.client",
            "vimax_nb.widgets",
            "vimax_nb.cli",
            "ipywidgets",
            "websockets",
            # the a2a-sdk only once a client speaks A2A
            *A2A,
            "vimax_nb.a2a",
        ),
    ),
    "the A2A layer": (
        "import vimax_nb.a2a",
        (
            "vimax_nb.server",
            "vimax_nb.client",
            "vimax_nb.widgets",
            "vimax_nb.cli",
            "ipywidgets",
            "websockets",
            "starlette",
            "sse_starlette",
            "fastapi",
        ),
    ),
    "the client": (
        "import vimax_nb.client, vimax_nb.client.fleet, vimax_nb.client.view",
        (
            *SERVER_HALF,
            *A2A,
            "vimax_nb.a2a",
            "vimax_nb.providers",
            "vimax_nb.pipelines",
            "vimax_nb.widgets",
            "ipywidgets",
            *MEDIA,
        ),
    ),
    "the providers": (
        "import vimax_nb.providers, vimax_nb.providers.procedural",
        ("vimax_nb.coordinator", "vimax_nb.store", "vimax_nb.pipelines", "vimax_nb.server"),
    ),
    "the parameters and plain-word requests": (
        "import vimax_nb.pipelines.params, vimax_nb.pipelines.request",
        (*SERVER_HALF, *MEDIA, "vimax_nb.providers.procedural", "openai"),
    ),
    "the widgets": (
        "import vimax_nb.widgets",
        (*SERVER_HALF, *MEDIA),
    ),
    "vimax-nb --help": (
        """
        import contextlib, io
        from vimax_nb.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
        """,
        (*SERVER_HALF, *MEDIA, "ipywidgets"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_front_end_loads_only_its_layers(case: str) -> None:
    code, forbidden = CASES[case]
    assert offenders(loaded_by(code), forbidden) == []


def test_the_check_sees_a_forbidden_import() -> None:
    """The probe itself works: loading the coordinator shows up as an offender."""
    modules = loaded_by("import vimax_nb.coordinator")
    assert "vimax_nb.coordinator" in offenders(modules, SERVER_HALF)
