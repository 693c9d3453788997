# syntax=docker/dockerfile:1
# One image for the Vahana scheduler/operator (`vahana`) and the worker (`vahana-worker`).
#
#   docker build -t ghcr.io/vahana/vahana:0.1.0 .
#   docker run --rm -p 50051:50051 ghcr.io/vahana/vahana:0.1.0          # a standalone scheduler
#   docker run --rm ghcr.io/vahana/vahana:0.1.0 vahana-worker --server-address=host:50051
#
# Offline, from a local base image (docs/install.md):
#   podman build --network host --build-arg PYTHON_IMAGE=localhost/python:3.11-slim -t localhost/vahana:dev .
#
# The Helm chart runs `vahana operator ...`; kubernetes WorkerPools run `vahana-worker ...`.
# tests/integration/test_image.py builds this file and runs the image.

ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: wheels of both distributions, the runtime's virtualenv, the worker zipapp ------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# vahana/crds in the operator package is a symlink to the repository's crds/.
COPY crds/ crds/
COPY worker/ worker/
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels ./worker ./operator
# The virtualenv is made without pip (the builder's pip installs into it), so neither pip nor
# setuptools ever reaches the runtime. kubernetes.aio, the client's asyncio copy (68 MB), is
# never imported (kopf has its own client). Byte code is compiled here: the root file system
# is read-only in a cluster, so nothing could cache it at run time.
RUN python -m venv --without-pip /opt/vahana \
    && pip --python /opt/vahana/bin/python install --no-index --find-links=/wheels --no-compile \
       vahana vahana-worker \
    && rm -rf /opt/vahana/lib/python3*/site-packages/kubernetes/aio \
    && /opt/vahana/bin/python -m compileall -q -j 0 /opt/vahana/lib
# The worker zipapp that slurm and baremetal WorkerPools hand to their pilots (pools.worker_pyz):
# the worker with this image's grpcio and protobuf, so pilots run it with the same CPython minor
# version on the same platform (worker/build_pyz.py says why).
RUN pip install --no-index --find-links=/wheels vahana-worker \
    && pip install "shiv>=1.0.6" \
    && python worker/build_pyz.py --output /dist/worker.pyz

# -- runtime: the base, an ssh client for remote pools, the virtualenv; no pip, no compilers ---
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
    PYTHONUNBUFFERED=1
# openssh-client: slurm pools reach their login node and baremetal pools their hosts over ssh.
# tini: PID 1 of a scheduler/operator container, reaping what its children leave (a local
# worker's guardian, an ssh's helper); the worker reaps by itself when it is PID 1.
# The base's pip, setuptools and wheel (and the wheels ensurepip would install) are removed:
# nothing in the image installs packages.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client tini \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
    && for site in $(python3 -c 'import site; print(" ".join(site.getsitepackages()))'); do \
         rm -rf "$site"/pip "$site"/pip-* "$site"/setuptools "$site"/setuptools-* \
                "$site"/wheel "$site"/wheel-* "$site"/pkg_resources "$site"/_distutils_hack \
                "$site"/distutils-precedence.pth; \
       done \
    && rm -rf /usr/local/bin/pip* /usr/bin/pip* /usr/share/python-wheels \
              /usr/local/lib/python3*/ensurepip/_bundled \
    && groupadd --gid 65532 vahana \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/vahana --create-home \
       --shell /usr/sbin/nologin vahana \
    && install -d -o 65532 -g 65532 /work
COPY --from=builder /opt/vahana /opt/vahana
COPY --from=builder /dist/worker.pyz /opt/vahana/share/worker.pyz
# The state dir (store, logs, sandboxes) and the worker's working dir; volumes in a cluster.
WORKDIR /var/lib/vahana
USER 65532:65532
EXPOSE 50051 8080 9090
# No ENTRYPOINT: the command names the program, `tini -- vahana ...` or `vahana-worker ...`.
CMD ["tini", "--", "vahana", "server", "--host=0.0.0.0", "--insecure", "--state-dir=/var/lib/vahana"]
