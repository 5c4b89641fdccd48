"""What the Replicate models share: the SDK client made from a
:class:`~.config.ReplicateConfig`, the rate limiter, :meth:`ReplicateModel.probe`, and
one prediction's life (:meth:`ReplicateModel.predict`): resumed or created with its
reference images uploaded, polled, canceled, and its output downloaded."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput
from replicate.prediction import Prediction
from replicate.version import Versions

from ..base import ProviderCall, ProviderError, Role, Usage
from ..jobs import wait_for_job
from ..media import Reference
from ..pacing import RateLimiter
from .config import PROVIDER, ReplicateConfig
from .errors import SDK_ERRORS, map_error, prediction_error

__all__ = ["Draft", "ReplicateModel", "make_client"]

_FINAL = ("succeeded", "failed", "canceled")
#: Replicate prediction ids; a job slot holding anything else (a Veo operation name)
#: belongs to another provider.
_PREDICTION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def make_client(config: ReplicateConfig) -> Client:
    """An SDK client for ``config`` that never retries on its own.

    The SDK wraps its transport in a retrying one (GETs on 429, 503 and 504, up to ten
    times with sleeps no cancel interrupts); mounting a plain transport for every URL
    replaces it, so each failure comes back at once and its ``retryable`` flag tells
    the coordinator whether to try again. Sends nothing.
    """
    return Client(
        api_token=config.api_token,
        base_url=config.base_url,
        timeout=httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0)),
        mounts={"all://": httpx.HTTPTransport()},
    )


@dataclass(slots=True)
class Draft:
    """A prediction about to be created: its ``input`` but for the reference images,
    the ``images`` to upload under each input name (one, or a list), and the
    ``usage`` to authorize."""

    input: dict[str, Any]
    usage: Usage
    images: dict[str, Reference | list[Reference]] = field(default_factory=dict)


def _urls(value: Any) -> Iterator[str]:
    """The file URLs in a prediction's output (a URL, a list of them, or a mapping)."""
    if isinstance(value, str):
        if value.startswith(("http://", "https://", "data:")):
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _urls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _urls(item)


def _last_log_line(prediction: Prediction) -> str:
    """The last line the model logged, shortened to 160 characters ("" when none)."""
    lines = [line.strip() for line in (prediction.logs or "").splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


class ReplicateModel:
    """One Replicate model: its ``config``, ``client`` and ``rate_limiter`` (paces the
    creation of predictions, the paid requests), the ``provider`` and ``model`` names,
    :meth:`probe` and :meth:`predict`. Making one sends nothing."""

    provider = PROVIDER
    role: Role

    def __init__(self, config: ReplicateConfig) -> None:
        self.config = config
        self.model = config.model
        self.client = make_client(config)
        self.rate_limiter = RateLimiter(config.requests_per_minute)

    def probe(self) -> None:
        """Read the model's description, and its version's when the name has one (free,
        not paced); raises the ProviderError of :func:`~.errors.map_error` when the
        service is unreachable, refuses the token (401) or does not know the model or
        version (404)."""
        try:
            self.client.models.get(self.config.slug)
            if self.config.version:
                Versions(self.client, (self.config.owner, self.config.name)).get(
                    self.config.version
                )
        except SDK_ERRORS as exc:
            raise self.error(exc, f"probing {self.model}") from exc

    def error(self, exc: Exception, what: str) -> ProviderError:
        """``exc`` of a request ``what`` as a ProviderError (see :func:`~.errors.map_error`)."""
        return map_error(exc, what, self.config)

    def predict(self, draft: Callable[[], Draft], call: ProviderCall, what: str) -> Prediction:
        """The succeeded prediction of this call.

        A prediction of this model that an earlier attempt started
        (``call.recall_job()``) is polled again instead of creating one (nothing is
        read, uploaded or authorized; a remembered job that is not such a prediction, or
        is gone or canceled, is set aside). Otherwise ``draft()`` is made (it reads the
        reference images: a missing one is an error before anything is sent), the cancel
        token checked, ``call.authorize`` given the draft's usage (a
        :class:`~vimax_nb.providers.base.BudgetExceeded` means nothing was sent), the
        images uploaded (``files.create``) and their URLs put in the input, and the
        prediction created (paced by the rate limiter) and kept with
        ``call.remember_job``.

        The prediction is polled with :func:`~vimax_nb.providers.jobs.wait_for_job`,
        each poll reported as ``waiting on <model> (N s): <last log line>``; a cancel
        cancels it through the API and forgets it, an interrupt keeps it for the resumed
        workflow. One that failed or was canceled elsewhere is forgotten and raised as
        :func:`~.errors.prediction_error`; a poll that finds it gone (404) forgets it and
        raises a retryable error; other poll failures keep it.
        """
        prediction = self._resume(call, what)
        if prediction is None:
            prediction = self._create(draft(), call, what)
        prediction = wait_for_job(
            prediction,
            fetch=lambda job: self._fetch(job, call, what),
            done=lambda job: job.status in _FINAL,
            describe=_last_log_line,
            cancel=self._cancel,
            call=call,
            model=self.model,
            provider=PROVIDER,
            timing=self.config.job_timing,
        )
        if prediction.status != "succeeded":
            call.remember_job(None)
            raise prediction_error(prediction, what)
        return prediction

    def output(self, prediction: Prediction, call: ProviderCall, what: str) -> bytes:
        """The bytes of the first file a succeeded prediction output, downloaded as the
        SDK's ``FileOutput`` does (with the API token).

        No file in the output (Replicate removes outputs after a while), or a download
        that finds it gone (404, 410), forgets the prediction and is a retryable error:
        the next attempt makes a new one. Other download failures keep it.
        """
        url = next(_urls(prediction.output), None)
        if url is None:
            call.remember_job(None)
            raise ProviderError(
                f"{what}: the prediction {prediction.id} succeeded without an output file "
                "(removed, or never made); the next attempt starts a new one",
                retryable=True,
                provider=PROVIDER,
            )
        try:
            return FileOutput(url, self.client).read()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code not in (404, 410):
                raise self.error(exc, f"{what}: downloading {url}") from exc
            call.remember_job(None)
            raise ProviderError(
                f"{what}: the output of prediction {prediction.id} is gone ({url}); the next "
                "attempt starts a new one",
                retryable=True,
                provider=PROVIDER,
            ) from exc
        except SDK_ERRORS as exc:
            raise self.error(exc, f"{what}: downloading {url}") from exc

    def _resume(self, call: ProviderCall, what: str) -> Prediction | None:
        job_id = call.recall_job()
        if not job_id or not _PREDICTION_ID.fullmatch(job_id):
            return None
        try:
            prediction = self.client.predictions.get(job_id)
        except ReplicateError as exc:
            if exc.status == 404:
                return None
            raise self.error(exc, f"{what}: resuming prediction {job_id}") from exc
        except SDK_ERRORS as exc:
            raise self.error(exc, f"{what}: resuming prediction {job_id}") from exc
        if prediction.model != self.config.slug or prediction.status == "canceled":
            return None
        return prediction

    def _create(self, draft: Draft, call: ProviderCall, what: str) -> Prediction:
        call.raise_if_cancelled()
        call.authorize(draft.usage)
        inputs = dict(draft.input)
        uploaded: dict[str, str] = {}
        for key, images in draft.images.items():
            if isinstance(images, list):
                inputs[key] = [self._upload(image, uploaded, call, what) for image in images]
            else:
                inputs[key] = self._upload(images, uploaded, call, what)
        self.rate_limiter.acquire(call.cancel_token)
        try:
            if self.config.version:
                prediction = self.client.predictions.create(
                    version=self.config.version, input=inputs
                )
            else:
                prediction = self.client.models.predictions.create(
                    model=self.config.slug, input=inputs
                )
        except SDK_ERRORS as exc:
            raise self.error(exc, what) from exc
        call.remember_job(prediction.id)
        return prediction

    def _upload(
        self, image: Reference, uploaded: dict[str, str], call: ProviderCall, what: str
    ) -> str:
        """The URL of ``image`` uploaded with ``files.create`` (once per call)."""
        key = str(image.path)
        if key not in uploaded:
            call.raise_if_cancelled()
            try:
                file = self.client.files.create(
                    io.BytesIO(image.data), filename=image.path.name, content_type=image.mime_type
                )
            except SDK_ERRORS as exc:
                raise self.error(exc, f"{what}: uploading {image.path.name}") from exc
            uploaded[key] = file.urls["get"]
        return uploaded[key]

    def _cancel(self, prediction: Prediction) -> None:
        self.client.predictions.cancel(prediction.id)

    def _fetch(self, prediction: Prediction, call: ProviderCall, what: str) -> Prediction:
        try:
            return self.client.predictions.get(prediction.id)
        except ReplicateError as exc:
            if exc.status != 404:
                raise self.error(exc, f"{what}: polling prediction {prediction.id}") from exc
            call.remember_job(None)
            raise ProviderError(
                f"{what}: the prediction {prediction.id} is gone; the next attempt starts a "
                "new one",
                retryable=True,
                provider=PROVIDER,
            ) from exc
        except SDK_ERRORS as exc:
            raise self.error(exc, f"{what}: polling prediction {prediction.id}") from exc
