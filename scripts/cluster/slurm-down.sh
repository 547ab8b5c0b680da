#!/bin/bash
# Stop the one-node Slurm cluster of slurm-up.sh: slurm-down.sh [STATE_DIR]
exec "$(dirname "$0")/slurm-up.sh" down "$@"
