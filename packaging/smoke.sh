#!/usr/bin/env bash
# Run the built app headless, as a first start would: its version, a demo, one task trained by the CLI on
# the tiny backbone, the window opened offscreen that adds and trains a second task through Start (in the
# training child process: proves multiprocessing works frozen), and the pretrained backbone from the bundle.
#   packaging/smoke.sh [packaging/dist/clstudio/clstudio]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
app="${1:-$here/dist/clstudio/clstudio}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CLSTUDIO_HOME="$work/home" QT_QPA_PLATFORM=offscreen
start=$(date +%s)
"$app" --version
"$app" make-demo "$work/demo" >/dev/null
"$app" train --project "$work/p" --backbone tiny --task "$work/demo/shapes" > "$work/train.log"
"$app" app "$work/p" --smoke-train "$work/demo/colours" --quit-after 3
"$app" eval --project "$work/p" | tail -4
"$app" classify --project "$work/p" --task colours "$work/demo/colours/red" | head -3
# ...served by ONNX Runtime inside the bundle (engine/serving.py), not by the torch fallback: its model is cached
ls "$CLSTUDIO_HOME"/cache/onnx/*.onnx > /dev/null
# The default backbone's weights ship inside: a project on EfficientNet-Lite0 builds with no network.
"$app" train --project "$work/lite0" --task "$work/demo/shapes" --epochs 1 > "$work/lite0.log"
grep -q "efficientnet_lite0" "$work/lite0/project.json"
echo "smoke: passed in $(( $(date +%s) - start )) s"
