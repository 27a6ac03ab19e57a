# Sourced by bootstrap.sh and toolchain-venv.sh: one way to make a venv and to
# know whether its install is current (a stamp of the files that define it).

# make_venv VENV: create VENV with $PYTHON (>= 3.11) unless it exists.
make_venv() {
  local py="${PYTHON:-python3}"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "$(basename "$0"): Python >= 3.11 required (found $("$py" -V 2>&1))" >&2; exit 1; }
  [ -x "$1/bin/python" ] || "$py" -m venv "$1"
}

# up_to_date VENV FILE...: true when VENV was installed from these very files.
up_to_date() {
  local venv="$1"; shift
  [ -f "$venv/.bootstrap-stamp" ] && [ "$(cat "$venv/.bootstrap-stamp")" = "$(stamp "$@")" ]
}

# mark_installed VENV FILE...: remember the files VENV was installed from.
mark_installed() {
  local venv="$1"; shift
  stamp "$@" > "$venv/.bootstrap-stamp"
}

stamp() { cat "$@" | sha256sum | cut -d' ' -f1; }
