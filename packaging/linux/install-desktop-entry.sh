#!/usr/bin/env bash
# Puts CL Studio in the desktop's application menu for this user: the .desktop entry, the icon in every
# hicolor size, and the AppStream metainfo, under $XDG_DATA_HOME (default ~/.local/share).
# Run it after the README's install command (it needs `clstudio-gui` on PATH), or with the bundle's folder:
#   packaging/linux/install-desktop-entry.sh [/path/to/dist/clstudio]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
id=io.github.clstudio.CLStudio
mkdir -p "$data/applications" "$data/metainfo"
if [[ $# -ge 1 ]]; then  # a bundle: point Exec at its executable
  sed "s|^Exec=.*|Exec=$(cd "$1" && pwd)/clstudio %f|" "$here/$id.desktop" > "$data/applications/$id.desktop"
else
  cp "$here/$id.desktop" "$data/applications/$id.desktop"
fi
for png in "$root"/resources/icons/clstudio-*.png; do
  size="$(basename "$png" .png)"; size="${size#clstudio-}"
  mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
  cp "$png" "$data/icons/hicolor/${size}x${size}/apps/$id.png"
done
mkdir -p "$data/icons/hicolor/scalable/apps"
cp "$root/resources/clstudio.svg" "$data/icons/hicolor/scalable/apps/$id.svg"
cp "$here/$id.metainfo.xml" "$data/metainfo/$id.metainfo.xml"
command -v update-desktop-database >/dev/null && update-desktop-database "$data/applications" || true
echo "CL Studio is in the application menu (entry: $data/applications/$id.desktop)"
