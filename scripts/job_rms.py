"""A campaign job: daily RMS of each station-day of its param line's subset, one CSV per job.

``start.bash`` exports SEISSTORE_ARCHIVE and SEISSTORE_RESULTS (``campaign new --archive
--results``), so the same script runs unchanged on any cluster.
"""
import numpy as np

from seisstore.jobs import Job

with Job() as job:                                      # argv, dates.txt, stations.txt -> subset
    rows = [f"{key.net}.{key.sta}.{key.loc}.{key.cha},{key.day},{np.sqrt(np.mean(st[0].data.astype(float) ** 2)):.2f}"
            for key, st in job.read(prefetch=4)]        # ObsPy Streams, 4 downloads ahead
    with open(f"{job.name}.csv", "w") as out:
        out.write("".join(f"{row}\n" for row in rows))
    job.put(f"{job.name}.csv", avus={"rows": str(len(rows))})   # atomic, checksummed, with AVUs
