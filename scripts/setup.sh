#!/usr/bin/env bash
# Create .venv and install selcopy with its test tools. torch==2.13.0 first: here it is a
# CPU build on local disk; a looser requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
