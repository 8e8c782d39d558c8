"""The errors hpo raises on purpose. Each message is one line that says what is wrong and how to
fix it; the CLI prints it in red and exits with `exit_code`, without a traceback."""

import re


def redact(text: str) -> str:
    """`text` fit to print or record: the password of any URL in it (scheme://user:PASSWORD@host)
    replaced by ***. Credentials belong in ~/.pgpass or the environment, never in a log."""
    return re.sub(r"(://[^/:@\s]+):[^/@\s]*@", r"\1:***@", text)


def first_line(exc: BaseException, *, limit: int = 300) -> str:
    """The first line of an exception's message (its type's name when it has none), at most `limit`
    characters: what a one-line error or a recorded failure reason shows of it."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


class HpoError(Exception):
    """Base of every error a user can cause or fix."""

    exit_code = 1


class ConfigError(HpoError):
    """A value given by the user is invalid (flag, space file, combination of settings)."""

    exit_code = 2


class DataError(HpoError):
    """Dataset files are missing, unreadable or of the wrong shape."""


class DeviceError(HpoError):
    """The requested training device does not exist on this machine."""


class StudyError(HpoError):
    """The study store cannot be opened, the study is missing or cannot be resumed."""


class TrialTakenError(StudyError):
    """This process's trial was ended by another one (its heartbeat came late, as while the
    database restarted): it was failed and queued again there, so this process drops it."""


class TrackingError(HpoError):
    """The MLflow store cannot be reached or written."""


class CheckpointError(HpoError):
    """A checkpoint is missing, truncated or does not match its configuration."""


class LockboxError(HpoError):
    """The test set of a study was already used and `--force` was not given."""
