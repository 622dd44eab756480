"""Remote evaluation through OFREP, for short-lived processes (scripts, jobs) that would rather not fetch
and follow the whole flag set: one `POST /ofrep/v1/evaluate/flags/{key}` per evaluation.

The server records the exposures of these evaluations itself, so the client logs none. A failure
(network, timeout, an answer that is not OFREP's, such as a refused key) returns the caller's default with
reason ERROR, error code GENERAL and what the server answered, in words; evaluations still never raise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from flagd_sdk.answers import describe
from flagd_sdk.core import evaluation_context
from flagd_sdk.drivers import client_settings
from flagd_sdk.evaluation import FlagType, Reason, ResolutionDetails
from flagd_sdk.evaluation.types import ErrorCode
from flagd_sdk.options import Options

logger = logging.getLogger("flagd_sdk")

_TYPES: dict[FlagType, tuple[type, ...]] = {
    FlagType.BOOLEAN: (bool,),
    FlagType.STRING: (str,),
    FlagType.INTEGER: (int,),
    FlagType.FLOAT: (float, int),
    FlagType.OBJECT: (dict, list),
}


def _error(default: Any, code: ErrorCode, message: str) -> ResolutionDetails:
    return ResolutionDetails(default, None, Reason.ERROR, code, message)


class RemoteEvaluator:
    def __init__(self, options: Options, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(**client_settings(options), transport=transport)

    def close(self) -> None:
        self._http.close()

    def evaluate(
        self,
        flag_type: FlagType,
        key: str,
        default: Any,
        unit: str | None,
        attributes: Mapping[str, Any] | None,
    ) -> ResolutionDetails:
        context = evaluation_context(unit, attributes)
        try:
            response = self._http.post(
                f"/ofrep/v1/evaluate/flags/{quote(key, safe='')}", json={"context": context}
            )
        except httpx.HTTPError as exc:
            logger.warning("remote evaluation of %r failed: %s", key, exc)
            return _error(default, ErrorCode.GENERAL, f"the server could not be asked: {exc}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or (response.status_code != 200 and "errorCode" not in body):
            # Not OFREP's answer for this flag (a refused key, an overloaded server, a proxy's page).
            answered = describe(response.status_code, response.content)
            logger.warning("remote evaluation of %r failed: %s", key, answered)
            return _error(default, ErrorCode.GENERAL, answered)
        if "errorCode" in body:
            try:
                code = ErrorCode(body["errorCode"])
            except ValueError:
                code = ErrorCode.GENERAL
            return _error(default, code, str(body.get("errorDetails", "")))
        given = body.get("metadata")
        metadata: dict[str, bool | int | float | str] = (
            {k: v for k, v in given.items() if isinstance(v, bool | int | float | str)}
            if isinstance(given, dict)
            else {}
        )
        reason = (
            Reason(body["reason"]) if body.get("reason") in Reason.__members__ else Reason.TARGETING_MATCH
        )
        if "value" not in body:  # the flag defers to the code default
            return ResolutionDetails(default, body.get("variant"), reason, None, None, metadata)
        value = body["value"]
        wanted = _TYPES.get(flag_type)
        if wanted is not None and (
            not isinstance(value, wanted) or (flag_type is not FlagType.BOOLEAN and isinstance(value, bool))
        ):
            return _error(
                default,
                ErrorCode.TYPE_MISMATCH,
                f"flag {key!r} is not of type {flag_type.value}: {json.dumps(value)[:100]}",
            )
        return ResolutionDetails(value, body.get("variant"), reason, None, None, metadata)
