"""An OpenFeature provider on a flagd_sdk `Client`: vendor-neutral code, flagd's local evaluation.

    pip install 'flagd-sdk[openfeature]'

    from openfeature import api
    from flagd_sdk import Client
    from flagd_sdk.openfeature import FlagdProvider

    api.set_provider(FlagdProvider(Client("http://127.0.0.1:8080", sdk_key)))
    flags = api.get_client()
    flags.get_boolean_value("new-ui", False, EvaluationContext("user-1", {"country": "NL"}))
    flags.track("purchase", EvaluationContext("user-1"), TrackingEventDetails(value=42.0))

Evaluations log exposures of running experiments as the client does; `track` sends a track event
for the context's targeting key (the event's value and attributes are its value and properties).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata
from openfeature.track import TrackingEventDetails as TrackingDetails

from flagd_sdk.client import Client
from flagd_sdk.evaluation import FlagType, ResolutionDetails

_Value = Any


def _split(context: EvaluationContext | None) -> tuple[str | None, Mapping[str, Any] | None]:
    if context is None:
        return None, None
    return context.targeting_key, context.attributes


def _details(details: ResolutionDetails) -> FlagResolutionDetails[Any]:
    code = ErrorCode(details.error_code.value) if details.error_code is not None else None
    return FlagResolutionDetails(
        value=details.value,
        error_code=code,
        error_message=details.error_message,
        reason=details.reason.value,
        variant=details.variant,
        flag_metadata=dict(details.flag_metadata),
    )


class FlagdProvider(AbstractProvider):
    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client

    def get_metadata(self) -> Metadata:
        return Metadata(name="flagd-sdk-python")

    def shutdown(self) -> None:
        self.client.close()

    def _resolve(
        self, flag_type: FlagType, key: str, default: _Value, context: EvaluationContext | None
    ) -> FlagResolutionDetails[Any]:
        unit, attributes = _split(context)
        return _details(self.client.details(key, unit, default, attributes, flag_type))

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(FlagType.BOOLEAN, flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(FlagType.STRING, flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(FlagType.INTEGER, flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(FlagType.FLOAT, flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        return self._resolve(FlagType.OBJECT, flag_key, default_value, evaluation_context)

    def track(
        self,
        tracking_event_name: str,
        evaluation_context: EvaluationContext | None = None,
        tracking_event_details: TrackingDetails | None = None,
    ) -> None:
        unit, _ = _split(evaluation_context)
        if not unit:
            return  # an event needs a unit: OpenFeature's tracking API does not raise
        value = tracking_event_details.value if tracking_event_details is not None else None
        properties = tracking_event_details.attributes if tracking_event_details is not None else None
        self.client.track(tracking_event_name, unit, value=value, properties=properties)
