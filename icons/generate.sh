#!/bin/sh
# Redraws the Lyrebird icon (a bird with a lyre-shaped tail, original artwork) and derives every
# bundle size from it. Needs ImageMagick 6 (`/usr/bin/convert`) and npm `@tauri-apps/cli` (ui/ devDeps).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/convert -size 1024x1024 xc:none \
  -fill '#1f6f78' -draw 'roundrectangle 64,64 960,960 200,200' \
  -fill none -stroke '#f4e3b5' -strokewidth 34 -draw "path 'M 520,600 C 420,420 300,260 360,140'" \
  -draw "path 'M 560,600 C 700,430 820,280 740,150'" \
  -stroke '#f4e3b5' -strokewidth 14 -draw "path 'M 536,590 C 500,420 470,300 500,200'" \
  -draw "path 'M 548,590 C 590,420 620,300 600,210'" \
  -stroke '#f4e3b5' -strokewidth 10 -draw "line 420,360 690,360" \
  -stroke none -fill '#fbf5e6' -draw 'ellipse 450,700 150,105 0,360' \
  -draw 'circle 330,600 330,668' \
  -fill '#e0a84a' -draw 'polygon 270,590 196,620 272,628' \
  -fill '#1d2b2f' -draw 'circle 320,592 320,606' \
  -stroke '#e0a84a' -strokewidth 16 -draw 'line 430,800 410,870' -draw 'line 500,800 520,870' \
  "$work/icon-1024.png"
(cd "$here/../ui" && npx tauri icon "$work/icon-1024.png" -o "$work/out")
for f in icon.png 32x32.png 128x128.png 128x128@2x.png icon.ico icon.icns; do
  cp "$work/out/$f" "$here/$f"
done
