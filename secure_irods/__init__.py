"""secure_irods: resilient python-irodsclient access for many concurrent grid jobs.

Light on purpose: importing the package does not import python-irodsclient.
"""

from .errors import (
    AuthenticationError,
    ChecksumMismatchError,
    ExistsError,
    InvalidInputError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    SecureIrodsError,
    TransientError,
    ZoneBusyError,
    classify,
    redact,
    register_secret,
)
from .policy import Deadline, RetryPolicy
from .query import Query, ReplicaStatus
from .throttle import Cooldown, Throttle
from .client import Client, connect
from .transfer import TransferResult

__all__ = [
    "AuthenticationError",
    "ChecksumMismatchError",
    "Client",
    "Cooldown",
    "Deadline",
    "ExistsError",
    "InvalidInputError",
    "NotFoundError",
    "PermanentError",
    "PermissionDeniedError",
    "Query",
    "ReplicaStatus",
    "RetryPolicy",
    "SecureIrodsError",
    "Throttle",
    "TransferResult",
    "TransientError",
    "ZoneBusyError",
    "classify",
    "connect",
    "redact",
    "register_secret",
]
