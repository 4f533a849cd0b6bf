# Shared by scripts/run and scripts/test: install what is missing, and only that.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# need_debs PACKAGE...: apt-get install the Debian packages that are not installed yet.
need_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# need_python: python3 with venv and headers (Debian splits them into python3-venv and python3-dev).
need_python() {
  command -v python3 >/dev/null || need_debs python3
  python3 -c 'import ensurepip' 2>/dev/null || need_debs python3-venv
}

# make_venv REQUIREMENTS: .venv with exactly those requirements; re-installs when the file changes.
make_venv() {
  local requirements=$1 stamp=.venv/.installed-$(basename "$1")
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if [ ! -f "$stamp" ] || ! cat "$requirements" requirements*.txt | cmp -s - "$stamp"; then
    echo "==> installing Python packages from $requirements into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
    cat "$requirements" requirements*.txt > "$stamp"
  fi
}
