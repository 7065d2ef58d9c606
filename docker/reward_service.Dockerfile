# The math reward service: FastAPI + uvicorn with a pool of killable grading processes.
# Build from the repository root:
#   docker build -f docker/reward_service.Dockerfile -t mathrl/reward-service .
#   docker run -p 8000:8000 -e REWARD_SERVICE_TOKEN=secret mathrl/reward-service
# Only the package's base dependencies are installed (FastAPI, uvicorn, math-verify, sympy, ...): no torch.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/mathrl
COPY setup.py README.md ./
COPY reward_service ./reward_service
# Base install only (no extras): the grading library and the HTTP service. latex2sympy2 must NOT be installed
# (it pins antlr 4.7.2 and breaks math-verify); the check below fails the build if something pulled it in.
RUN pip install . \
 && python -c "import importlib.util as u, sys; sys.exit(1 if u.find_spec('latex2sympy2') or u.find_spec('torch') else 0)" \
 && python -c "import reward_service.app, reward_service.grading"

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin reward
USER 10001:10001
WORKDIR /home/reward

ENV REWARD_SERVICE_HOST=0.0.0.0 \
    REWARD_SERVICE_PORT=8000
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import os, sys, urllib.request; p = os.environ.get('REWARD_SERVICE_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{p}/health', timeout=2).status == 200 else 1)"

# Graceful stop: SIGTERM lets uvicorn finish in-flight requests and stop the grading workers.
STOPSIGNAL SIGTERM
ENTRYPOINT ["reward-service"]
