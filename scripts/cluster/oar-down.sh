#!/bin/bash
# Stop the one-node OAR cluster of oar-up.sh and put /etc/oar/oar.conf back: oar-down.sh [STATE_DIR]
exec "$(dirname "$0")/oar-up.sh" down "$@"
