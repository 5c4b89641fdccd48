"""Launchers: forms that start Idea2Video and Script2Video workflows, and a conversational
launcher that turns a request in plain words into a plan one can edit and launch.

A launch validates the form on the calling thread (quick: the same pydantic models the
server checks with, :mod:`vimax_nb.pipelines.params`), then submits it over REST on a
worker thread, so a click never blocks the kernel; the new run's
:class:`~.progress.WorkflowProgress` appears below the form. Bad input and refused or
failed submissions become a message in the widget, never an exception in the kernel.

The forms are built from those models' fields (bounds, defaults); the styles offered
and the reading of a request are :mod:`vimax_nb.pipelines.request`'s. Each form has a
provider picker per role (chat, image, video) offering the server's ready providers
(``GET /vimax/api/providers``, read on a worker thread when the launcher is made; the
role's default chosen), and a max cost in US dollars (empty: no limit); they are sent as
the ``providers`` and ``max_cost`` parameters.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import ipywidgets as widgets
from tornado.ioloop import IOLoop

from ..client import Client, Run, VimaxError
from ..client.view import PROVIDER_ROLES, SERVER_DEFAULT, provider_choices
from ..pipelines.params import Idea2VideoParams, Script2VideoParams, VideoParams
from ..pipelines.request import STYLES, describe_plan, parse_request_offline
from ..protocol import ProviderStatus
from . import theme
from ._redraw import MIN_INTERVAL, PanelView
from .agents import resolve_client
from .progress import WorkflowProgress
from .theme import esc

__all__ = ["Idea2VideoLauncher", "RequestLauncher", "Script2VideoLauncher"]

LABELS = {
    "idea": "idea",
    "script": "script",
    "style": "style",
    "user_requirement": "requirement",
    "scenes": "scenes",
    "shots_per_scene": "shots per scene",
    "width": "width",
    "height": "height",
    "fps": "fps",
    "seconds_per_shot": "seconds per shot",
    "seed": "seed",
    "max_cost": "max cost",
    "providers.chat": "chat provider",
    "providers.image": "image provider",
    "providers.video": "video provider",
}
ADVANCED = ("scenes", "shots_per_scene", "width", "height", "fps", "seconds_per_shot", "seed")
_WIDE = widgets.Layout(width="100%")
_LABEL_STYLE = {"description_width": "initial"}


class ParamsForm:
    """The widgets of one workflow's parameters, built from its pydantic model.

    ``subject`` is ``"idea"`` or ``"script"``; bounds and defaults come from the model.
    """

    def __init__(self, subject: str, model: type[VideoParams], defaults: dict[str, Any]) -> None:
        unknown = set(defaults) - set(model.model_fields)
        if unknown:
            raise TypeError(f"unknown parameters: {', '.join(sorted(unknown))}")
        self.subject = subject
        self.model = model
        self.fields: dict[str, Any] = {}
        self.picker = ProviderPicker()
        rows = 3 if subject == "idea" else 10
        self.fields[subject] = widgets.Textarea(
            placeholder=f"your {subject}", rows=rows, layout=_WIDE
        )
        self.fields["style"] = widgets.Combobox(
            options=sorted(set(STYLES.values())),
            description="style",
            ensure_option=False,
            style=_LABEL_STYLE,
        )
        self.fields["user_requirement"] = widgets.Text(
            description="requirement",
            placeholder="audience, wishes, limits",
            style=_LABEL_STYLE,
            layout=widgets.Layout(width="50%"),
        )
        for name in ADVANCED:
            label = LABELS[name]
            if name == "scenes" and subject == "script":
                label = "scenes (0: one per heading)"
            self.fields[name] = _number_widget(model.model_fields[name], label)
        self.set({**_defaults(model), **defaults})
        self.advanced = widgets.Accordion(
            children=[
                widgets.GridBox(
                    [self.fields[n] for n in ADVANCED],
                    layout=widgets.Layout(
                        grid_template_columns="repeat(auto-fill, minmax(200px, 1fr))"
                    ),
                )
            ],
            selected_index=None,
        )
        self.advanced.set_title(0, "Advanced options")
        self.box = widgets.VBox(
            [
                self.fields[subject],
                widgets.HBox([self.fields["style"], self.fields["user_requirement"]]),
                self.picker.box,
                self.advanced,
            ]
        )

    def values(self) -> dict[str, Any]:
        """What the widgets hold now, unchecked (the providers and the max cost as
        :meth:`ProviderPicker.values` gives them)."""
        values = {name: widget.value for name, widget in self.fields.items()}
        return {**values, **self.picker.values()}

    def set(self, params: dict[str, Any]) -> None:
        """Fill the widgets from ``params`` (names not in the form are ignored, and so is
        None)."""
        for name, value in params.items():
            if name in self.fields and value is not None:
                self.fields[name].value = value
        self.picker.set(params)

    def validated(self) -> VideoParams:
        """The parameters as the model; ValueError with a message a person can act on."""
        from pydantic import ValidationError

        values = self.values()
        if not str(values[self.subject]).strip():
            verb = "Write an idea" if self.subject == "idea" else "Paste or write a script"
            raise ValueError(f"{verb} first: the {self.subject} is empty.")
        try:
            return self.model.model_validate(values)
        except ValidationError as exc:
            raise ValueError(explain(exc)) from None

    def observe(self, callback: Any) -> None:
        for widget in self.fields.values():
            widget.observe(callback, names="value")


class ProviderPicker:
    """A dropdown per role (chat, image, video) and a max cost field.

    A dropdown offers the ready providers of its role, the role's default chosen (see
    :func:`~vimax_nb.client.view.provider_choices`); until :meth:`show` is given the
    server's providers, its one option is the server's default. The note under them says
    why a default is not offered, or why the providers could not be listed.
    """

    def __init__(self) -> None:
        self.dropdowns: dict[str, Any] = {
            role: widgets.Dropdown(
                options=[("server default", SERVER_DEFAULT)],
                value=SERVER_DEFAULT,
                description=role,
                style=_LABEL_STYLE,
                layout=widgets.Layout(width="auto", min_width="170px"),
            )
            for role in PROVIDER_ROLES
        }
        self.max_cost = widgets.Text(
            description="max cost $",
            placeholder="no limit",
            style=_LABEL_STYLE,
            layout=widgets.Layout(width="170px"),
        )
        self.note = widgets.HTML()
        self.box = widgets.VBox(
            [widgets.HBox([*self.dropdowns.values(), self.max_cost]), self.note]
        )
        self._shown: tuple[list[ProviderStatus] | None, str] = (None, "")
        self._wanted: dict[str, str] = {}  # role -> a provider asked for, not offered yet
        self._wanted_lock = threading.Lock()

    def show(self, providers: list[ProviderStatus] | None, problem: str = "") -> None:
        """Offer ``providers`` (None: not known) and say ``problem`` (``""``: none); a
        choice made among the same providers stays. Call it on the drawing thread."""
        if (providers, problem) == self._shown:
            return
        self._shown = (providers, problem)
        notes = [problem] if problem else []
        for role, dropdown in self.dropdowns.items():
            choices = provider_choices(providers or [], role)
            chosen = dropdown.value
            values = [value for _label, value in choices.options]
            dropdown.options = choices.options
            keep = chosen != SERVER_DEFAULT and chosen in values
            dropdown.value = chosen if keep else choices.value
            if choices.note:
                notes.append(choices.note)
        self._choose_wanted()
        self.note.value = "".join(
            f"<div style='color:{theme.AMBER}'><small>{esc(n)}</small></div>" for n in notes
        )

    def values(self) -> dict[str, Any]:
        """``{"providers": {role: name or None}, "max_cost": dollars or None}``, unchecked:
        a max cost that is not a number is given as typed (the model refuses it)."""
        text = str(self.max_cost.value).strip().lstrip("$").strip()
        max_cost: float | str | None = None
        if text:
            try:
                max_cost = float(text.replace(",", ""))
            except ValueError:
                max_cost = text
        providers = {
            role: (dropdown.value if dropdown.value != SERVER_DEFAULT else None)
            for role, dropdown in self.dropdowns.items()
        }
        return {"providers": providers, "max_cost": max_cost}

    def set(self, params: dict[str, Any]) -> None:
        """Take ``max_cost`` and the roles ``providers`` names from ``params`` (others,
        and None, are ignored); a provider is chosen once it is offered."""
        limit = params.get("max_cost")
        if limit is not None:
            self.max_cost.value = f"{limit:g}" if isinstance(limit, int | float) else str(limit)
        wanted = params.get("providers") or {}
        with self._wanted_lock:
            for role, name in dict(wanted).items():
                if role in self.dropdowns and name:
                    self._wanted[role] = str(name)
        self._choose_wanted()

    def _choose_wanted(self) -> None:
        with self._wanted_lock:
            for role, name in list(self._wanted.items()):
                dropdown = self.dropdowns[role]
                if name in [value for _label, value in dropdown.options]:
                    dropdown.value = name
                    del self._wanted[role]


class _Launcher(PanelView):
    """A form, a Launch button, a message line and the progress of each launched run."""

    kind = ""
    subject = ""

    def __init__(
        self,
        client: Client | None = None,
        *,
        interval: float = MIN_INTERVAL,
        loop: IOLoop | None = None,
        **defaults: Any,
    ) -> None:
        super().__init__(interval=interval, loop=loop)
        model = Idea2VideoParams if self.subject == "idea" else Script2VideoParams
        self.client = client
        self.form = ParamsForm(self.subject, model, defaults)
        self.runs: list[Run] = []
        self.progress: list[WorkflowProgress] = []
        self._busy = False
        self._message = ("", "")  # (tone: "", "info", "error", "ok"; text)
        self._shown_runs = 0
        self._providers: list[ProviderStatus] | None = None  # None: not listed (yet)
        self._providers_problem = ""
        self._providers_loading = True
        self._providers_listed = threading.Event()  # the first listing ended, well or not
        self.launch_button = widgets.Button(
            description="Launch", icon="rocket", button_style="primary"
        )
        self.launch_button.on_click(lambda _b: self.launch())
        self.message = widgets.HTML()
        self.runs_box = widgets.VBox()
        self.box = widgets.VBox(
            [*self._head(), widgets.HBox([self.launch_button, self.message]), self.runs_box]
        )
        self.box.add_class("vimax-launcher")
        self.flush()
        threading.Thread(target=self._load_providers, name="vimax-providers", daemon=True).start()

    def _head(self) -> list[Any]:
        return [self.form.box]

    # -- the providers (a worker thread) -----------------------------------------------

    @property
    def providers(self) -> list[ProviderStatus] | None:
        """The server's providers as the pickers offer them (None until they are listed)."""
        with self._lock:
            return self._providers

    def wait_providers(self, timeout: float | None = None) -> bool:
        """Block until the first listing of the server's providers has ended (they are in
        :attr:`providers`, or the pickers say why not) and the pickers show it; False
        after ``timeout`` s. Not on the loop that serves the server."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._providers_listed.wait(timeout):
            return False
        return self.wait_drawn(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _load_providers(self) -> None:
        """List the server's providers for the pickers. Without a client of its own the
        launcher uses a server already there (it starts none before a launch)."""
        problem = ""
        providers: list[ProviderStatus] | None = None
        try:
            client = self.client if self.client is not None else _found_client()
            providers = client.providers() if client is not None else None
            if client is None:
                problem = "the providers are listed once a server is connected"
        except VimaxError as exc:
            if exc.status == 404:
                problem = "this server does not list its providers: it uses its defaults"
            else:
                problem = f"could not list the providers: {exc}"
        except Exception as exc:  # shown, never raised into the kernel
            problem = f"could not list the providers: {exc}"
        with self._lock:
            self._providers_loading = False
            if providers is not None or self._providers is None:
                self._providers, self._providers_problem = providers, problem
        self._request_draw()
        self._providers_listed.set()

    # -- launching ---------------------------------------------------------------------

    def launch(self) -> bool:
        """Check the form and submit it on a worker thread; False when it cannot start
        (the reason is shown in the widget)."""
        try:
            params = self._params()
        except ValueError as exc:
            self._say("error", str(exc))
            return False
        with self._lock:
            if self._busy:
                return False
            self._busy = True
            self._message = ("info", f"Submitting the {self.kind} workflow\N{HORIZONTAL ELLIPSIS}")
        self._request_draw()
        threading.Thread(
            target=self._submit, args=(params,), name="vimax-launch", daemon=True
        ).start()
        return True

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.form.validated().model_dump()
        return params

    def _submit(self, params: dict[str, Any]) -> None:
        try:
            client = resolve_client(self.client)
            run = client.submit(self.kind, **params)
            progress = WorkflowProgress(run, interval=self.interval, loop=self._loop)
        except Exception as exc:  # shown, never raised into the kernel
            message = ("error", f"The launch failed: {exc}")
        else:
            with self._lock:
                self.runs.append(run)
                closed = self._closed  # closed meanwhile: its _detach has run already
                if not closed:
                    self.progress.append(progress)
            if closed:
                progress.close()  # no orphan panel; the run itself goes on
            message = ("ok", f"Launched {self.kind} {run.id}.")
        with self._lock:
            self._busy = False
            self._message = message
            unlisted = message[0] == "ok" and self._providers is None
            unlisted = unlisted and not (self._providers_loading or self._closed)
            self._providers_loading = self._providers_loading or unlisted
        self._request_draw()
        if unlisted:  # a server is there now: list its providers
            self._load_providers()

    def _say(self, tone: str, text: str) -> None:
        with self._lock:
            self._message = (tone, text)
        self._request_draw()

    # -- drawing -----------------------------------------------------------------------

    def _draw(self) -> None:
        with self._lock:
            busy, (tone, text), progress = self._busy, self._message, list(self.progress)
            providers, problem = self._providers, self._providers_problem
        self.form.picker.show(providers, problem)
        self.launch_button.disabled = busy
        self.launch_button.description = "Launching\N{HORIZONTAL ELLIPSIS}" if busy else "Launch"
        color = {"error": theme.RED, "ok": theme.GREEN}.get(tone, theme.GREY)
        self.message.value = (
            f"<span style='color:{color};white-space:pre-wrap'>{esc(text)}</span>" if text else ""
        )
        if len(progress) != self._shown_runs:  # newest first
            self._shown_runs = len(progress)
            self.runs_box.children = [p.box for p in reversed(progress)]

    def _detach(self) -> None:
        with self._lock:
            progress = list(self.progress)
        for panel in progress:
            panel.close()

    def __repr__(self) -> str:
        with self._lock:
            busy, runs = self._busy, list(self.runs)
        name = type(self).__name__
        if busy:
            return f"{name}(launching)"
        if not runs:
            return f"{name}(no runs)"
        text = repr(runs[-1])
        match = re.fullmatch(r"\w+\((.*)\)", text, re.DOTALL)
        last = match.group(1) if match else text
        return f"{name}({len(runs)} run{'s' if len(runs) != 1 else ''}, last: {last})"


class Idea2VideoLauncher(_Launcher):
    """A form that starts Idea2Video workflows on ``client`` (default: the default
    client); keyword arguments (``idea``, ``style``, ``scenes``, ...) fill it in."""

    kind = "idea2video"
    subject = "idea"


class Script2VideoLauncher(_Launcher):
    """A form that starts Script2Video workflows on ``client`` (default: the default
    client); keyword arguments (``script``, ``style``, ``scenes``, ...) fill it in."""

    kind = "script2video"
    subject = "script"


class RequestLauncher(_Launcher):
    """Type a request in plain words ("a three-scene watercolor video about a fox who
    learns to fly, for children"), see the plan it becomes, edit it, launch it.

    The request is read by :func:`vimax_nb.pipelines.request.parse_request_offline`'s
    rules; the plan is an Idea2Video form, and the line above it
    (:func:`~vimax_nb.pipelines.request.describe_plan`) follows every edit.
    """

    kind = "idea2video"
    subject = "idea"

    def __init__(
        self,
        client: Client | None = None,
        *,
        request: str = "",
        interval: float = MIN_INTERVAL,
        loop: IOLoop | None = None,
    ) -> None:
        self.request = widgets.Textarea(
            value=request,
            placeholder="a three-scene watercolor video about a fox who learns to fly, for kids",
            rows=2,
            layout=_WIDE,
        )
        self.plan_button = widgets.Button(description="Make a plan", icon="list")
        self.plan_html = widgets.HTML()
        super().__init__(client, interval=interval, loop=loop)
        self.plan_button.on_click(lambda _b: self.make_plan())
        self.form.observe(lambda _change: self._request_draw())
        if request.strip():
            self.make_plan()
            self.flush()

    def _head(self) -> list[Any]:
        return [self.request, widgets.HBox([self.plan_button, self.plan_html]), self.form.box]

    def make_plan(self) -> bool:
        """Turn the request into the form's values; False (and a message) if it cannot."""
        text = str(self.request.value)
        if not text.strip():
            self._say("error", "Type a request first: what should the video be about?")
            return False
        try:
            params = parse_request_offline(text)
        except ValueError as exc:
            self._say("error", _first_line(str(exc)))
            return False
        self.form.set(params.model_dump())
        self._say("", "")
        return True

    @property
    def plan(self) -> str:
        """The plan the form holds now, in one line ("" while it is not valid)."""
        try:
            planned = self.form.validated()
        except ValueError:
            return ""
        return describe_plan(planned) if isinstance(planned, Idea2VideoParams) else ""

    def _params(self) -> dict[str, Any]:
        unplanned = not str(self.form.values()["idea"]).strip()
        if unplanned and str(self.request.value).strip() and not self.make_plan():
            raise ValueError(_first_line(self._message[1]))
        return super()._params()

    def _draw(self) -> None:
        super()._draw()
        plan = self.plan
        self.plan_html.value = f"<b>Plan:</b> {esc(plan)}" if plan else ""


def _found_client() -> Client | None:
    """The default client, else one of a server :func:`~vimax_nb.client.connect` finds
    without starting one; None when there is none."""
    from ..client import discovery

    client = discovery.default_client()
    if client is not None:
        return client
    try:
        return discovery.connect(start_server=False)
    except ConnectionError:
        return None


def explain(exc: Any) -> str:
    """A pydantic ValidationError as "field: problem; field: problem"."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(x) for x in error.get("loc", ())) or "input"
        parts.append(f"{LABELS.get(where, where)}: {error.get('msg', 'invalid')}")
    return "; ".join(parts)


def _number_widget(field: Any, label: str) -> Any:
    low = high = None
    for rule in field.metadata:
        low = getattr(rule, "ge", getattr(rule, "gt", low))
        high = getattr(rule, "le", getattr(rule, "lt", high))
    integer = isinstance(field.default, int)
    cls = widgets.BoundedIntText if integer else widgets.BoundedFloatText
    options: dict[str, Any] = {"description": label, "style": _LABEL_STYLE}
    options["min"] = low if low is not None else (-(2**31) if integer else -1e9)
    options["max"] = high if high is not None else (2**31 - 1 if integer else 1e9)
    if not integer:
        options["step"] = 0.5
    return cls(value=field.default, layout=widgets.Layout(width="190px"), **options)


def _defaults(model: type[VideoParams]) -> dict[str, Any]:
    return {
        name: field.default
        for name, field in model.model_fields.items()
        if isinstance(field.default, str | int | float)
    }


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
