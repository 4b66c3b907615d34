"""The one base class of the errors the Odin SDK raises, so callers can catch them all at once.

A failed workflow or activity still surfaces as temporalio's ``WorkflowFailureError`` /
``ActivityError``, with the original error in its ``__cause__`` chain."""

from __future__ import annotations


class OdinSdkError(Exception):
    """Base of every error the Odin SDK itself raises."""
