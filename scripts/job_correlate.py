"""A campaign job: correlate the station pairs of its param line into bundles (see seisstore.jobs.correlate)."""
from seisstore.jobs.correlate import main

main()
