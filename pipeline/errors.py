"""Errors a user can fix: the CLI prints them as one paragraph, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or environment: the message names the field, the value and the fix."""

    transient = False  # deterministic: the same input fails the same way, so orchestrators do not retry


class ConfigError(UserError):
    """A RunConfig key or value is invalid."""


class DataError(UserError):
    """A data source cannot be prepared (missing, corrupt, empty, offline...)."""


class ResourceError(UserError):
    """The cluster cannot place what the configuration asks for."""


class TrainingDiverged(UserError):
    """The loss became NaN/inf or the energy scale blew up beyond recovery."""


class UnsafeFileError(UserError):
    """A file failed its hash check or needs code execution to load; it was refused, never run."""


class BusyError(UserError):
    """Another process holds the lock of a run or data directory."""

    transient = True  # the holder finishes; a later retry can succeed
