"""Fit to this scan: self-supervised super-resolution that learns a thick-slice scan's slice axis from its own
sharp plane (``volumenet fit``, ``volumenet upscale --fit``, the widget's "Fit to this scan").

:mod:`.profile` reads the slice profile, :mod:`.pairs` makes "thick → sharp" plane pairs from the in-plane axes,
:mod:`.start` picks the network to start from, :mod:`.loop` trains with the library's step and schedule and
self-validates, :mod:`.job` ties them together and writes the weights. See docs/fit.md.
"""

from .job import FitJob, Fitted, prepare, run
from .loop import FitSettings, FitUpdate
from .profile import SliceProfile, slice_profile_of

__all__ = ["FitJob", "FitSettings", "FitUpdate", "Fitted", "SliceProfile", "prepare", "run", "slice_profile_of"]
