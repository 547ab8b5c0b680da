"""A campaign job: correlate the station pairs of its param line into bundles (see seisstore.jobs.correlate)."""
from seisstore.jobs.correlate import main

main()   # settings: $SEISSTORE_CONFIG or correlate.json; or embed them here: main(config={...})
