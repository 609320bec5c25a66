#!/usr/bin/env bash
# Make the committed speech clips of data/speech/ with Debian's flite (run by hand, not by the
# build; the outputs are committed so neither the tests nor CI need flite).
#
#     apt-get install flite          # flite 2.2 (Debian 2.2-5), voices slt and rms built in
#     bash scripts/make_speech.sh    # from the repository root
#
# For every clip it writes data/speech/<name>.txt (the exact script, one line) and
# data/speech/<name>.flac (16 kHz mono 16-bit FLAC, flite's native rate, no processing).
# flite writes a 16 kHz 16-bit WAV; the project's soundfile turns it into FLAC.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=data/speech
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name|voice|script
clips=(
  "kitchen|slt|Could you pass me the salt, please? The soup needs a little more flavor. Dinner will be ready in ten minutes, so go and wash your hands. And tell your brother to turn off the radio."
  "station|rms|Excuse me, is this the right platform for the train to the city? I think I missed the last one. The board says the next train leaves in twenty minutes. Do you know where I can buy a cup of coffee?"
  "office|slt|Good morning, everyone. Let's start the meeting. We have a lot to talk about today. The new project is running late, and the client wants a report by Friday. Please send me your notes after lunch."
)

for clip in "${clips[@]}"; do
  IFS='|' read -r name voice text <<<"$clip"
  printf '%s\n' "$text" >"$OUT/$name.txt"
  flite -voice "$voice" -f "$OUT/$name.txt" -o "$tmp/$name.wav"
  "$PY" - "$tmp/$name.wav" "$OUT/$name.flac" <<'EOF'
import sys

import soundfile as sf

x, sr = sf.read(sys.argv[1], dtype="int16")
assert sr == 16000 and x.ndim == 1, (sr, x.shape)
sf.write(sys.argv[2], x, sr, format="FLAC", subtype="PCM_16")
print(f"{sys.argv[2]}  {x.size / sr:.2f} s")
EOF
done
