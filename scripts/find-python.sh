#!/usr/bin/env bash
# Print the path of a Python interpreter that really runs, or exit 1 saying how to get one.
#
#   scripts/find-python.sh 3.12     exactly 3.12 (what `sam build` needs for Runtime: python3.12)
#   scripts/find-python.sh 3.11+    3.11 or newer (what the dev venv needs)
#
# "Really runs" matters: a pyenv shim named python3.12 exists on PATH even when 3.12 is not the
# selected version, and then fails. Every candidate is therefore executed and asked its version;
# the path printed is the interpreter's own (sys.executable), never a shim.
set -euo pipefail

want="${1:?usage: $0 3.12 | 3.11+}"
case "$want" in
  *+) exact=""; version="${want%+}" ;;
  *) exact=1; version="$want" ;;
esac
if [[ ! "$version" =~ ^3\.[0-9]+$ ]]; then
  echo "$0: expected a version like 3.12 or 3.11+, got '$want'" >&2
  exit 2
fi
minor="${version#3.}"

# Prints sys.executable if $1 runs and its version fits; silent otherwise.
check() {
  local candidate="$1" op="=="
  [[ -z "$exact" ]] && op=">="
  [[ -n "$candidate" && -x "$candidate" ]] || command -v "$candidate" >/dev/null 2>&1 || return 1
  "$candidate" -c "import sys; assert sys.version_info[:2] $op (3, $minor); print(sys.executable)" 2>/dev/null
}

candidates=()
if [[ -z "$exact" ]]; then
  candidates+=(python3)
  for m in 15 14 13 12 11 10 9; do
    ((m >= minor)) && candidates+=("python3.$m")
  done
else
  candidates+=("python$version")
fi

# 1. On PATH (shims included: check() weeds out the ones that fail).
for candidate in "${candidates[@]}"; do
  if found="$(check "$candidate")" && [[ -n "$found" ]]; then
    echo "$found"
    exit 0
  fi
done

# 2. pyenv's installed versions, even when not selected (newest patch release first).
pyenv_root=""
if command -v pyenv >/dev/null 2>&1; then
  pyenv_root="$(pyenv root 2>/dev/null || true)"
fi
pyenv_root="${pyenv_root:-${PYENV_ROOT:-$HOME/.pyenv}}"
if [[ -d "$pyenv_root/versions" ]]; then
  pattern="$version*"
  [[ -z "$exact" ]] && pattern="3.*"
  while IFS= read -r dir; do
    for candidate in "${candidates[@]}"; do
      [[ "$candidate" == python3 ]] && continue
      if found="$(check "$dir/bin/$candidate")" && [[ -n "$found" ]]; then
        echo "$found"
        exit 0
      fi
    done
  done < <(find "$pyenv_root/versions" -mindepth 1 -maxdepth 1 -name "$pattern" 2>/dev/null | sort -rV)
fi

# 3. uv's managed interpreters.
if command -v uv >/dev/null 2>&1; then
  request="$version"
  [[ -z "$exact" ]] && request=">=$version"
  if found="$(check "$(uv python find "$request" 2>/dev/null || true)")" && [[ -n "$found" ]]; then
    echo "$found"
    exit 0
  fi
fi

# 4. The usual system places.
for dir in /usr/bin /usr/local/bin "$HOME/.local/bin"; do
  for candidate in "${candidates[@]}"; do
    if found="$(check "$dir/$candidate")" && [[ -n "$found" ]]; then
      echo "$found"
      exit 0
    fi
  done
done

cat >&2 <<EOF
No Python $want found (looked on PATH, in pyenv's versions under ${pyenv_root}, with uv, and in
/usr/bin, /usr/local/bin, ~/.local/bin). Install one, for example with any of:
    pyenv install $version          (then nothing else: this script finds pyenv's versions)
    uv python install $version
    sudo apt-get install python$version python$version-venv   (Debian/Ubuntu, where packaged)
    brew install python@$version    (macOS)
EOF
exit 1
