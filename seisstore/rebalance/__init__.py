"""Rebalance a collection across resources and resource groups: ``du``, plan, apply, status, verify.

* :mod:`.inventory` -- the resource tree and every replica, from two bulk GenQueries;
* :mod:`.plan` -- spread / move / replicate plans (JSON lines), from the inventory alone;
* :mod:`.apply` -- replicate -> verify -> trim, paced, parallel, resumable;
* :mod:`.journal` -- the journal next to the plan and the one-rebalance-per-collection lock;
* :mod:`.verify` -- objects at risk, stale replicas, replicas outside the targets.

Every zone call goes through a :class:`secure_irods.Client`.
"""

from .apply import Applier, ApplyReport, MoveOutcome
from .inventory import Inventory, Resources
from .journal import CollectionLock, Journal, LockedError
from .plan import Move, Plan, make_plan, parse_target
from .verify import VerifyReport, verify

__all__ = ["Applier", "ApplyReport", "MoveOutcome", "Inventory", "Resources", "CollectionLock", "Journal", "LockedError",
           "Move", "Plan", "make_plan", "parse_target", "VerifyReport", "verify"]
