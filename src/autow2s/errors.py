"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class AutoW2SError(Exception):
    """A problem the user can fix; the message says what went wrong and what to do next."""


class TaskFormatError(AutoW2SError):
    """A task directory or one of its rows does not match the task format."""


class UnknownNameError(AutoW2SError):
    """A task, method or backend name that is not registered."""


class PredictionError(AutoW2SError):
    """A method returned predictions of the wrong shape or with non-finite values."""


class MethodError(AutoW2SError):
    """A method's own code raised while running."""


class ProviderUnavailable(AutoW2SError):
    """The LLM provider kept failing (429, 5xx, 529, timeouts) past the retry window; a researcher pauses."""


class ProviderRejected(AutoW2SError):
    """The LLM provider refused the request itself (authentication, a bad request); retrying cannot help."""
