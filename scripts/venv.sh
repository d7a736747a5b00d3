# Sourced by scripts/run and scripts/test: make a venv (default .venv) and install a
# requirements file into it, skipping pip when nothing changed since the last install.
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
