#!/bin/sh
# rollout.sh — upgrade a fleet one host at a time, halting at the first
# host whose new build fails; that host, and all not yet reached, keep the
# old version serving.
#
#   examples/deploy/rollout.sh host1 host2 host3
#
# Each host has the new binary in place already (copied by your build
# pipeline to /srv/app/bin/httpserver, atomically) and handoff installed.
set -eu
for host in "$@"; do
	echo "== $host"
	if ! ssh "$host" handoff upgrade -control /srv/app/app.sock -timeout 2m; then
		echo "rollout halted at $host: the old version still serves there and beyond" >&2
		exit 1
	fi
done
echo "rollout complete: $# hosts"
