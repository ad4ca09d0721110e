"""Ray's own log lines that kfold keeps off the console (the Ray backend's one-line messages stay one line).

Nothing here imports Ray: a filter is attached to a logger by name.
"""
from __future__ import annotations

import logging

__all__ = ["quiet_token_notice"]

TOKEN_SETUP_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_ENABLED_NOTICE = "Token authentication is enabled"


class _TokenEnabledNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_ENABLED_NOTICE)


def quiet_token_notice() -> None:
    """Drop Ray's notice that a new local cluster turned token authentication on (by default since Ray 2.5x).

    kfold's embedded cluster is started by this command alone, on loopback; the notice (a ``WARNING`` line on
    stderr) would stand beside kfold's own lines, a second line before a one-line ``error:``. Token authentication
    itself is left as Ray decides, and Ray's warning that authentication is *disabled* still shows.

    Examples
    --------
    >>> import logging
    >>> quiet_token_notice()
    >>> logger = logging.getLogger(TOKEN_SETUP_LOGGER)
    >>> record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, TOKEN_ENABLED_NOTICE + " for this Ray cluster.", (), None)
    >>> logger.filter(record), sum(isinstance(f, _TokenEnabledNotice) for f in logger.filters)
    (False, 1)
    """
    logger = logging.getLogger(TOKEN_SETUP_LOGGER)
    if not any(isinstance(f, _TokenEnabledNotice) for f in logger.filters):
        logger.addFilter(_TokenEnabledNotice())
