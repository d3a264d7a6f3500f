"""Conventional exocytosis detectors to compare exodf with: ExoJ-like and ADAE-like.

Both take a (T, Y, X) movie and return an :class:`~exodf.events.EventTable`, like exodf's detector.
"""

from __future__ import annotations

from .adae_like import AdaeLikeConfig, detect_adae_like
from .exoj_like import ExojLikeConfig, detect_exoj_like
from .tracking import link_spots

__all__ = ["ExojLikeConfig", "detect_exoj_like", "AdaeLikeConfig", "detect_adae_like", "link_spots"]
