"""The exceptions kinema users see.

Everything kinema raises on purpose is a `KinemaError`; the CLI turns one into a single
`error: ...` line on stderr and exit code 2. Anything else is a bug and shows a traceback.
"""


class KinemaError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""


class InputError(KinemaError, ValueError):
    """An argument is out of range or malformed (sizes, frame counts, fit modes, ...)."""


class VideoReadError(KinemaError):
    """A video or image could not be read: missing, corrupt, unsupported, empty or too large."""


class WriteError(KinemaError):
    """An output could not be written (missing folder, no permission, disk full, ...).
    Outputs are written atomically, so no partial file is left behind."""


class DatasetError(KinemaError):
    """A dataset is empty, malformed or asked for something it cannot give."""


class CheckpointError(KinemaError):
    """A model or training checkpoint folder is missing, corrupt, or from an incompatible version."""


class TrainingError(KinemaError):
    """Training cannot go on (e.g. the loss became NaN); the last good checkpoint is kept."""


class Cancelled(KinemaError):
    """A run was cancelled by its `on_step` callback (a server job's cancel): nothing was written."""
