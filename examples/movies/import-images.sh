#!/usr/bin/env bash
# Imports the movie demo's images into a cluster's image store:
#   movies/features:v1, movies/serving:v1, movies/serving:v2, movies/ui:v1, movies/training:v1.
#
#   examples/movies/import-images.sh [IMAGE_DIR]
#
# IMAGE_DIR is the store the agents share: DATA/images for scripts/run-control-plane.sh
# (./control-plane.concord/images by default). The agent binary is $CONCORD_AGENT, or
# concord-agent in the workspace's release target directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
images="${1:-$PWD/control-plane.concord/images}"
agent="${CONCORD_AGENT:-}"
if [ -z "$agent" ]; then
  target="${CARGO_TARGET_DIR:-$(cd "$here" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')}"
  agent="$target/release/concord-agent"
fi
import() {
  "$agent" --image-dir "$images" image import "$@"
}
common=(--entrypoint python3 --env PYTHONUNBUFFERED=1)
import movies/features:v1 --from "$here/features" "${common[@]}" --cmd server.py
import movies/serving:v1 --from "$here/serving" "${common[@]}" --cmd server.py --env VERSION=v1
import movies/serving:v2 --from "$here/serving" "${common[@]}" --cmd server.py --env VERSION=v2
import movies/ui:v1 --from "$here/ui" "${common[@]}" --cmd server.py
import movies/training:v1 --from "$here/training" "${common[@]}" --cmd train.py
"$agent" --image-dir "$images" image list
