#!/bin/sh
# deploy.sh — build, place the binary atomically, upgrade, and stop the
# rollout if the new build fails (the old process keeps serving).
#
#   examples/deploy/deploy.sh [APP_DIR]
#
# APP_DIR holds bin/httpserver (started with -control APP_DIR/app.sock).
# Exit status: that of `handoff upgrade`: 0 upgraded, 1 the new build
# failed (the reason is printed; the old one still serves), 2 the server
# could not be reached.
set -eu
APP_DIR=${1:-/srv/app}
VERSION=${VERSION:-$(date +%Y%m%d%H%M%S)}
HANDOFF=${HANDOFF:-handoff}

# 1. Build next to the live binary, so the rename below is atomic.
go build -ldflags "-X main.version=$VERSION" -o "$APP_DIR/bin/httpserver.new" ./examples/httpserver

# 2. Replace the file the server was started from: the next generation is
#    started from this path, resolved at the moment of the upgrade.
mv -f "$APP_DIR/bin/httpserver.new" "$APP_DIR/bin/httpserver"

# 3. Upgrade and wait for the verdict.
if new_pid=$("$HANDOFF" upgrade -control "$APP_DIR/app.sock" -timeout 2m); then
	echo "deployed $VERSION: PID $new_pid serves"
else
	status=$?
	echo "deploy of $VERSION FAILED (exit $status); stopping the rollout" >&2
	exit "$status"
fi
