"""A campaign job: daily RMS of each station-day of its param line's subset, one CSV per job."""
import os

import numpy as np

from seisstore.job import Job

with Job(os.environ["SEISSTORE_ARCHIVE"]) as job:
    rows = [f"{key.net}.{key.sta}.{key.loc}.{key.cha},{key.day},{np.sqrt(np.mean(st[0].data.astype(float) ** 2)):.2f}"
            for key, st in job.read(prefetch=4)]
    with open("rms.csv", "w") as out:
        out.write("".join(f"{row}\n" for row in rows))
    job.put("rms.csv", f"{os.environ['SEISSTORE_RESULTS']}/{job.name}.csv")
