"""One error hierarchy for the whole package.

Every error the project raises on purpose derives from :class:`QAAgentError`
and is one of two kinds, so each face (CLI, agent, UI) needs only two
handlers:

- :class:`UserError`: the input or the request is unusable as given (a file
  without a date column, a machine that is not on hand, a malformed date). The
  message says what to fix. The CLI exits with 2.
- :class:`ServiceError`: something the project depends on is not working (the
  database, the index, the LLM backend, a broken configuration or table). The
  message says what failed and what to do. The CLI exits with 1.

The concrete classes stay in the modules that raise them (``InputError`` in
the importers, ``StoreError`` in the store, ...) so a reader finds the raise
and the class together; ``docs/architecture.md`` lists them.
"""

from __future__ import annotations


class QAAgentError(Exception):
    """Base of every error the project raises on purpose."""

    #: Exit code of the ``qa-agent`` command for this kind of error.
    exit_code: int = 1


class UserError(QAAgentError, ValueError):
    """The input or request cannot be used; the message says what to fix."""

    exit_code = 2


class ServiceError(QAAgentError, RuntimeError):
    """A service or a shipped resource is not working; the message says what to do."""

    exit_code = 1


__all__ = ["QAAgentError", "ServiceError", "UserError"]
