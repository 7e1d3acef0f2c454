#!/usr/bin/env bash
# The browser tests drive Debian's Chromium with Playwright. Install it when we can (root + apt-get);
# otherwise say so: the browser tests then skip, unless REQUIRE_BROWSER=1 makes that a failure.
set -eu
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium for the browser tests..."
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
else
  echo "note: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get);" \
       "the browser tests will be skipped. Install the 'chromium' package to run them."
fi
