"""seisstore: a seismic data catalogue over iRODS, and grid campaigns that read it."""
