#!/bin/sh
# Starts server.py with the version in ./version, or fails like a broken
# build when ./fail exists. exec keeps the PID, so LISTEN_PID stays right
# and READY=1 comes from the PID the supervisor started.
cd "$(dirname "$0")"
if [ -n "$ORPHAN" ]; then
	# Leave a process behind, as a worker's helper might: it outlives the
	# worker and is reparented to the nearest subreaper, which must reap it.
	(sleep 0.5 &)
fi
if [ -e fail ]; then
	echo "boom: cannot parse config" >&2
	exit 3
fi
exec python3 server.py "$(cat version 2>/dev/null || echo dev)"
