#!/bin/sh
# Entry point of the component image.
#   docker run IMAGE onboard --dry-run …   -> gitlab-otel onboard --dry-run …
#   docker run IMAGE --help                 -> gitlab-otel --help
#   docker run IMAGE sh -c '…'              -> the command as given
# The last form is what GitLab's Docker and Kubernetes executors do: they start
# the job image with a shell (unless the job sets `entrypoint: [""]`, as our
# components do), so anything that is not a gitlab-otel subcommand runs as is.
set -eu
if [ $# -eq 0 ]; then
  exec gitlab-otel --help
fi
case "$1" in
  -*) exec gitlab-otel "$@" ;;
esac
if command -v -- "$1" >/dev/null 2>&1; then
  exec "$@"
fi
exec gitlab-otel "$@"
