"""The HTTP webhook exporter: alerts POSTed (or PUT) as JSON.

    batchMaxAlerts == 1:  body = one alert              (Alert.to_dict, Content-Type JSON)
    batchMaxAlerts  > 1:  body = {"alerts": [alert, ...]}  up to batchMaxAlerts, gathered for at
                                                           most batchMaxDelay (by `Delivery`)

Headers: `headers` (inline values, for the composition root's environment layer), `headerFiles`
(re-read when the file changes: a rotated token is used without a restart) and `headerEnv`
(resolved once from the environment the composition root passes). Header values are secrets:
they are never logged, and errors name the header, not its value.

Status handling (`transport.classify`): 2xx delivered; 408, 429 and 5xx transient (retried by
`Delivery` with backoff); any other status permanent (dropped and counted, not retried).
Connection errors and timeouts are transient.

`maxAlertsPerMinute` is applied by `Delivery` before the queue (see `limiting`): the first alert
over the limit in a window is replaced by one "limit reached" alert.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence

import aiohttp

from detector.alerts import Alert
from exporters.config import HttpSettings
from exporters.encoding import alert_json
from exporters.errors import ExporterError, SendError
from exporters.transport import SecretFile, classify, client_ssl, make_session, probe

_JSON = "application/json"


class HttpExporter:
    def __init__(
        self,
        settings: HttpSettings,
        *,
        environ: Mapping[str, str] | None = None,
        name: str = "http",
    ) -> None:
        if not settings.url:
            raise ExporterError("no url configured", exporter=name, field="exporters.http.url")
        self._name = name
        self._settings = settings
        self._headers: dict[str, str] = {"Content-Type": _JSON}
        for header, secret in settings.headers.items():
            self._headers[header] = secret.get_secret_value()
        env = environ or {}
        for header, variable in settings.header_env.items():
            if variable not in env:
                raise ExporterError(
                    f"environment variable {variable} is not set",
                    exporter=name,
                    field=f"exporters.http.headerEnv.{header}",
                )
            self._headers[header] = env[variable]
        self._files = [
            (header, SecretFile(path, label=f"header {header}"))
            for header, path in settings.header_files.items()
        ]
        self._ssl: ssl.SSLContext | bool = client_ssl(
            ca_file=settings.ca_file,
            insecure=settings.insecure_skip_verify,
            exporter=name,
            field="exporters.http.caFile",
        )
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def channel(self) -> HttpSettings:
        return self._settings

    def body(self, batch: Sequence[Alert]) -> bytes:
        if self._settings.batch_max_alerts == 1 and len(batch) == 1:
            return alert_json(batch[0])
        return b'{"alerts":[' + b",".join(alert_json(a) for a in batch) + b"]}"

    def _request_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        for header, secret in self._files:
            headers[header] = secret.read(exporter=self._name)
        return headers

    async def send(self, batch: Sequence[Alert]) -> None:
        if self._closed:
            raise SendError("exporter is closed", exporter=self._name, permanent=True)
        if self._settings.batch_max_alerts == 1 and len(batch) > 1:
            for alert in batch:  # one request per alert, as configured
                await self._post(self.body([alert]))
            return
        await self._post(self.body(batch))

    async def _post(self, body: bytes) -> None:
        headers = self._request_headers()
        if self._session is None:
            self._session = make_session(
                ssl_setting=self._ssl, timeout_s=self._settings.timeout.total_seconds()
            )
        url = self._settings.url
        try:
            async with self._session.request(
                self._settings.method, url, data=body, headers=headers
            ) as response:
                status = response.status
                text = "" if 200 <= status < 300 else await response.text(errors="replace")
        except TimeoutError as exc:
            raise SendError(f"{url} did not answer in time", exporter=self._name) from exc
        except aiohttp.ClientError as exc:
            raise SendError(f"cannot reach {url}: {exc}", exporter=self._name) from exc
        error = classify(status, exporter=self._name, target=url, body=text)
        if error is not None:
            raise error

    async def healthcheck(self) -> None:
        if self._closed:
            raise ExporterError("exporter is closed", exporter=self._name)
        try:
            await probe(
                self._settings.url,
                ssl_setting=self._ssl,
                timeout_s=self._settings.timeout.total_seconds(),
            )
        except (OSError, TimeoutError) as exc:
            raise ExporterError(
                f"cannot reach {self._settings.url}: {str(exc) or type(exc).__name__}",
                exporter=self._name,
            ) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None
