# Sourced by scripts/run and scripts/test: make a venv (default .venv) and install a
# requirements file into it, skipping pip when nothing changed since the last install.
# The venv is made with PYTHON (default python3).
ensure_venv() {
  local requirements="$1"
  local venv="${2:-.venv}"
  local python="${PYTHON:-python3}"
  if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
  fi
  local stamp="$venv/.installed-$(basename "$requirements")"
  local wanted
  wanted="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
  fi
}

# Sets VENV for PYTHON: .venv when PYTHON is not set, else .venv-X.Y after its version, so
# that each interpreter keeps its own packages. PYTHON is a command (python3.13) or a path;
# a pythonX.Y command that does not run (pyenv's shim without PYENV_VERSION) is looked for
# as find_python does.
choose_venv() {
  VENV=.venv
  [ -n "${PYTHON:-}" ] || return 0
  local asked="$PYTHON" version
  if ! "$PYTHON" -c '' 2>/dev/null && [[ "$PYTHON" =~ ^python([0-9]+\.[0-9]+)$ ]]; then
    PYTHON="$(find_python "${BASH_REMATCH[1]}")" || PYTHON="$asked"
  fi
  if ! version="$("$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11); print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"; then
    echo "error: PYTHON=$asked is not a Python 3.11 or newer that runs here" >&2
    return 1
  fi
  VENV=".venv-$version"
}

# A Python X.Y interpreter: PYTHON_X_Y_PATH if set (e.g. PYTHON_3_13_PATH), else pythonX.Y
# if it runs, else pyenv's newest X.Y; nothing (and status 1) if there is none.
find_python() {
  local version="$1"
  local named="PYTHON_${version//./_}_PATH"
  if [ -n "${!named:-}" ]; then
    echo "${!named}"
  elif "python$version" -c '' 2>/dev/null; then
    command -v "python$version"
  else
    local pyenv
    pyenv="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/"python$version" 2>/dev/null | sort -V | tail -1)"
    [ -n "$pyenv" ] && echo "$pyenv"
  fi
}
