"""A campaign job: preprocess the raw day files of its param line (see seisstore.jobs.preprocess)."""
from seisstore.jobs.preprocess import main

main()   # settings: $SEISSTORE_CONFIG or preprocess.json; or embed them here: main(config={...})
