"""User-facing errors.

Every error a user can cause (bad file, bad option, wrong weights) is raised as a
:class:`VolumeNetError` whose message is one complete sentence meant to be shown as is:
the CLI prints it on one line of stderr, the napari widget shows it as a notification.
"""


class VolumeNetError(Exception):
    """Base class of every error caused by user input; the message is shown verbatim."""


class InputError(VolumeNetError):
    """A volume or path the user gave cannot be used (missing, not NIfTI, 4D, NaN, too small...)."""


class OutputError(VolumeNetError):
    """An output cannot be written (exists without overwrite, folder not writable...)."""


class WeightsError(VolumeNetError):
    """A weights file cannot be used with the requested model, scale or modality."""


class ModelError(VolumeNetError):
    """Unknown model name or invalid model arguments."""


class Cancelled(VolumeNetError):
    """The user cancelled a long-running operation; no partial result is kept."""


class VolumeNetWarning(UserWarning):
    """Base class of warnings meant for users; the CLI prints them as one line of stderr."""


class SlowPathWarning(VolumeNetWarning):
    """A requested setting works but runs far slower on this machine than the default would."""


class GeometryWarning(VolumeNetWarning):
    """A file's geometry is ambiguous (e.g. qform and sform disagree); what was done is in the message."""


class ModalityWarning(VolumeNetWarning):
    """The intensities do not look like the modality the weights were trained on (MRI weights on CT...)."""
