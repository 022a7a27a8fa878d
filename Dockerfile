# One image for the operator and the serving workloads. The packaging issue hardens it (pinned base by
# digest, non-root UID, GPU variant with the [vllm] extra); no Docker engine runs on the build machines.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sovereign ./sovereign
COPY operator ./operator
COPY serving ./serving
COPY devstack ./devstack
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 --create-home sovereign
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENTRYPOINT ["sovereign"]
