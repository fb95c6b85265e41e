"""Shared plumbing: user errors, config overrides, registries, atomic IO, checkpoints, seeding."""

from tenfold.common.errors import UserError

__all__ = ["UserError"]
