#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), builds, and
# runs every test. Needs no Python and no network beyond Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
make -j"$(nproc)" all
scripts/run_tests.sh build
