#!/usr/bin/env bash
# Make sure the report tests have a headless Chromium: Debian's package, installed when it is
# missing and this machine can (root and apt-get); otherwise one line saying what to install,
# before any test runs. Shared by `make test` and .ci/run.
set -euo pipefail
for exe in chromium chromium-browser google-chrome; do
    command -v "$exe" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "featinv: installing Debian's chromium for the report tests (first time only)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    exit 0
fi
echo "featinv: the report tests need a headless Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium) and run make test again" >&2
exit 1
