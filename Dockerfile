# syntax=docker/dockerfile:1
# One image for the Vahana scheduler/operator (`vahana`) and the worker (`vahana-worker`).
#
#   docker build -t ghcr.io/vahana/vahana:0.1.0 .
#   docker run --rm -p 50051:50051 ghcr.io/vahana/vahana:0.1.0          # a standalone scheduler
#   docker run --rm ghcr.io/vahana/vahana:0.1.0 vahana-worker --server-address=host:50051
#
# The Helm chart runs `vahana operator ...`; kubernetes WorkerPools run `vahana-worker ...`.
# tests/integration/test_dockerfile.py checks the entry points and installs the same wheels.

ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: wheels of both distributions and of every dependency ---------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# vahana/crds in the operator package is a symlink to the repository's crds/.
COPY crds/ crds/
COPY worker/ worker/
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels ./worker ./operator
# The worker zipapp that slurm and baremetal WorkerPools hand to their pilots (pools.worker_pyz):
# the worker with this image's grpcio and protobuf, so pilots run it with the same CPython minor
# version on the same platform (worker/build_pyz.py says why).
RUN pip install --no-index --find-links=/wheels vahana-worker \
    && pip install "shiv>=1.0.6" \
    && python worker/build_pyz.py --output /dist/worker.pyz

# -- runtime: a virtualenv installed from those wheels only; no compilers, no pip cache -------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vahana" \
      org.opencontainers.image.description="Vahana: scheduler, Kubernetes operator and worker for shell tasks on Kubernetes, SLURM and bare metal" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/vahana/vahana" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
ENV PATH=/opt/vahana/bin:$PATH \
    VAHANA_POOLS_WORKER_PYZ=/opt/vahana/share/worker.pyz \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/vahana \
    && /opt/vahana/bin/pip install --no-index --find-links=/wheels vahana vahana-worker \
    && /opt/vahana/bin/pip uninstall --yes pip \
    && groupadd --gid 65532 vahana \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/vahana --create-home \
       --shell /usr/sbin/nologin vahana \
    && install -d -o 65532 -g 65532 /work
COPY --from=builder /dist/worker.pyz /opt/vahana/share/worker.pyz
# The state dir (store, logs, sandboxes) and the worker's working dir; volumes in a cluster.
WORKDIR /var/lib/vahana
USER 65532:65532
EXPOSE 50051 9090
# No ENTRYPOINT: the command names the program, `vahana ...` or `vahana-worker ...`.
CMD ["vahana", "server", "--host=0.0.0.0", "--insecure", "--state-dir=/var/lib/vahana"]
