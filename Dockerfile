# syntax=docker/dockerfile:1
# One image for every service; the command names which: `delinkcious serve SERVICE`.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg REVISION=$(git rev-parse HEAD) -t delinkcious:dev .
#
# Pin the base by digest in CI (--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VENV=/opt/delinkcious \
    TOOLS=/opt/build-tools \
    WHEELS=/tmp/wheels
WORKDIR /src
# Every dependency from the lock, each file checked against its hash, wheels only: two
# builds of one commit install the same files, and no compiler is needed in either stage.
# The venv gets no pip or setuptools of its own: it holds the lock and nothing else.
COPY requirements/ requirements/
RUN python -m venv --without-pip "$VENV" \
 && python -m pip --python "$VENV/bin/python" install --require-hashes --only-binary=:all: \
        --no-deps -r requirements/runtime.txt
# The project itself is built by pinned build tools, kept out of the runtime venv.
COPY pyproject.toml README.md ./
COPY src/ src/
RUN python -m venv "$TOOLS" \
 && "$TOOLS/bin/pip" install --require-hashes --only-binary=:all: --no-deps \
        -r requirements/build.txt \
 && "$TOOLS/bin/pip" wheel --no-deps --no-build-isolation --wheel-dir "$WHEELS" . \
 && python -m pip --python "$VENV/bin/python" install --no-deps "$WHEELS"/delinkcious-*.whl \
 && "$VENV/bin/delinkcious" --version

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="Delinkcious" \
      org.opencontainers.image.description="Social bookmarking as Python microservices" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /opt/delinkcious /opt/delinkcious
# The root filesystem is read-only in the cluster: nothing is written at run time but to
# /tmp (an emptyDir there). Bytecode was compiled at install time.
ENV PATH=/opt/delinkcious/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    DELINKCIOUS_DATA_DIR=/tmp/delinkcious
WORKDIR /tmp
# A numeric user, so Kubernetes can prove runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["delinkcious"]
CMD ["serve", "gateway", "--host", "0.0.0.0", "--port", "8080"]

# The inner loop's image (Tiltfile, skaffold.yaml): the same, but the package's source may
# be replaced in the running container by a live update (`serve --reload` restarts on it).
FROM runtime AS dev
USER root
RUN chown -R 10001:10001 /opt/delinkcious/lib/python3.*/site-packages/delinkcious
USER 10001:10001

# The default target: what every environment but dev runs.
FROM runtime
