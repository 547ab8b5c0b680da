"""Run the correlation job with a pause before each bundle is stored, so a test can kill it there.

``python tests/correlate_holding.py SECONDS <param line fields>``: the job of
``python -m seisstore.jobs.correlate``, with ``CorrelationStore.append`` delayed.  A test
hook, kept out of the job's code.
"""

from __future__ import annotations

import sys
import time

from seisstore.bundles import CorrelationStore
from seisstore.jobs import correlate


def main() -> None:
    hold, args = float(sys.argv[1]), sys.argv[2:]
    append = CorrelationStore.append

    def held(self: CorrelationStore, *a: object, **kw: object) -> None:
        time.sleep(hold)
        append(self, *a, **kw)  # type: ignore[arg-type]

    CorrelationStore.append = held  # type: ignore[method-assign]
    correlate.main(args)


if __name__ == "__main__":
    main()
