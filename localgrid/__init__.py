"""A local iRODS grid: a server that python-irodsclient talks to over the real protocol.

It imports nothing of secure_irods or seisstore; they are tested against it.
"""

from .control import GridControl
from .faults import FaultPolicy

__all__ = ["GridControl", "FaultPolicy"]
