"""Errors a person can act on. Every message says what went wrong and what to do about it."""


class CLStudioError(Exception):
    """Base class: the CLI prints these as one line, the GUI as a dialog, never as a traceback."""


class DatasetError(CLStudioError):
    """A folder or image cannot be used as a task (wrong layout, no images, one class, ...)."""


class ProjectError(CLStudioError):
    """A project on disk is missing, malformed, from a newer version, or used inconsistently."""


class BackboneError(CLStudioError):
    """Pretrained weights are missing or do not match the architecture."""


class CheckpointError(CLStudioError):
    """A weight file is unreadable, unsafe (pickle) or does not fit the model."""


class StorageError(CLStudioError):
    """A write failed (disk full, read-only folder, permissions); what was saved before is intact."""


class Cancelled(Exception):  # noqa: N818 - reads better at the raise site than CancelledError
    """Raised inside a job when its CancelToken was set; the job leaves nothing half-written."""
