#!/bin/sh
# Installs the built package with production dependencies only:
#   install.sh SRC DEST BIN_DIR
# SRC holds package.json, package-lock.json and dist/ (plus templates/,
# runner-config/, catalog.yml); DEST becomes the installed package; BIN_DIR gets
# `gitlab-otel` and `gitlab-otel-entrypoint`. The Dockerfile runs exactly this,
# and test/catalog-component-image.test.ts runs it outside Docker.
set -eu
src=$1 dest=$2 bin=$3
[ -f "$src/dist/cli.js" ] || { echo "install.sh: $src/dist/cli.js missing; run npm run build first" >&2; exit 2; }
mkdir -p "$dest" "$bin"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cp -R "$src/dist" "$dest/dist"
for extra in templates runner-config catalog.yml README.md; do
  if [ -e "$src/$extra" ]; then cp -R "$src/$extra" "$dest/$extra"; fi
done
# --ignore-scripts: `prepare` would try to build again, without dev dependencies.
(cd "$dest" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund)
chmod 0755 "$dest/dist/cli.js"
ln -sf "$dest/dist/cli.js" "$bin/gitlab-otel"
cp "$(dirname "$0")/entrypoint.sh" "$bin/gitlab-otel-entrypoint"
chmod 0755 "$bin/gitlab-otel-entrypoint"
