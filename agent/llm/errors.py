"""The errors of the chat model factory.

All three are :class:`agent.errors.ServiceError` (the CLI exits with 1), and
so also ``RuntimeError``. :class:`StructuredOutputError` stays a
``ValueError`` as well: the agent's router and ``with_structured_output(...,
include_raw=True)`` catch a reply that does not parse as ``ValueError``.
"""

from __future__ import annotations

from agent.errors import ServiceError


class ModelSetupError(ServiceError):
    """The embedded model cannot be assembled; the message says what to do."""


class LLMError(ServiceError):
    """llama.cpp refused or failed a request (for example: context too long)."""


class StructuredOutputError(ServiceError, ValueError):
    """The model's reply is not JSON matching the requested schema."""


__all__ = ["LLMError", "ModelSetupError", "StructuredOutputError"]
