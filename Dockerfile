# syntax=docker/dockerfile:1
# One image for the operator (`python -m sovereign_operator`, the default command) and the serving
# workloads (KubeRay starts `ray start ...` in it and Ray Serve imports sovereign_serving from it).
#
# Based on Ray's own image of the version pyproject.toml pins, so the RayService's Ray and the image's Ray
# are the same. Build (README, "Build the image"):
#   docker buildx build --build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311@sha256:<digest> -t ... .
#   docker buildx build --build-arg BASE_IMAGE=rayproject/ray:2.60.0-py311-gpu@sha256:<digest> \
#     --build-arg VARIANT=gpu -t ... .
# tests/packaging/test_dockerfile.py checks this file statically (hadolint and the rules below): no Docker
# engine runs on the build machines.

# Required, no default: a digest cannot be looked up here, and a placeholder default would fail at the
# pull with a message that does not say what to do. Without it the build stops at the first FROM.
ARG BASE_IMAGE

# ---- build: the platform's wheel (pure Python), from the sources only ----
FROM ${BASE_IMAGE} AS build
ARG BASE_IMAGE
# A tag alone can be moved to another image: refuse anything not pinned by digest.
RUN digest="${BASE_IMAGE##*@sha256:}"; \
    if [ "${digest}" = "${BASE_IMAGE}" ] || [ "${#digest}" -ne 64 ]; then \
      echo "BASE_IMAGE must be pinned by digest (NAME:TAG@sha256:<64 hex>), got '${BASE_IMAGE}'." \
           "Get the digest with: docker buildx imagetools inspect NAME:TAG, or: crane digest NAME:TAG" >&2; \
      exit 1; \
    fi
# Root in this stage only (setuptools writes build/ and *.egg-info beside the sources); only the wheel
# leaves it, so DL3002 (last USER root) does not apply.
# hadolint ignore=DL3002
USER 0
WORKDIR /tmp/src
# The product only: the devstack (devstack/, its own distribution) is not in the build context.
COPY pyproject.toml setup.py README.md ./
COPY sovereign ./sovereign
COPY operator ./operator
COPY serving ./serving
COPY policies ./policies
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels .

# ---- final: the base image plus the platform, run as a fixed non-root UID ----
FROM ${BASE_IMAGE}
# cpu: transformers engine, torch from the CPU-only index; gpu: also the [vllm] extra (CUDA base image).
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
# Ray's image runs as `ray` (uid 1000) with password-less sudo; the platform's processes run as 10001, the
# chart's runAsUser, which has no sudo and cannot write the Python environment it runs from.
USER 0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The platform, installed as root into the base image's Python (its Ray is already the pinned version); the
# policies are its package data (sovereign_policies, read with importlib.resources) and the devstack is not in
# it: the build fails if the code cannot find the policies or can import sovereign_devstack.
# DL3013: what is installed is the wheel file built above, not a name resolved from an index; its
# dependencies' versions are pyproject.toml's (torch pinned, from the CPU index for cpu).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/tmp/wheels,target=/tmp/wheels \
    wheel="$(echo /tmp/wheels/sovereign_ai_platform-*.whl)" \
    && case "${VARIANT}" in \
         cpu) pip install --no-cache-dir --index-url "${TORCH_CPU_INDEX_URL}" "torch==${TORCH_VERSION}" \
              && pip install --no-cache-dir "${wheel}" ;; \
         gpu) pip install --no-cache-dir "${wheel}[vllm]" ;; \
         *) echo "VARIANT must be cpu or gpu, got '${VARIANT}'" >&2; exit 1 ;; \
       esac \
    && python -c "import ray, sys; sys.exit(ray.__version__ != '2.60.0' and 'base image Ray ' + ray.__version__ + ' is not the pinned 2.60.0')" \
    && python -c "from sovereign.policy.schema import POLICY_DIR; from sovereign.platform_setup import OPERATOR_POLICY_PATH; assert (POLICY_DIR / 'base.cedar').is_file() and OPERATOR_POLICY_PATH.is_file()" \
    && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('sovereign_devstack') and 'the devstack is in the image')"

# No compiler, no sudo and no package lists in the CPU image. The GPU image keeps the CUDA base's compiler:
# Triton (under vLLM) compiles its kernel launchers with it at run time.
RUN if [ "${VARIANT}" = cpu ]; then \
      dpkg-query -W -f='${binary:Package} ${db:Status-Status}\n' \
        | awk '$2 == "installed" {sub(/:.*/, "", $1); print $1}' \
        | { grep -E '^(sudo|gcc|g\+\+|cpp|c\+\+|cmake|make|build-essential)(-[0-9.]+)?$' || true; } \
        | xargs --no-run-if-empty apt-get purge -y --auto-remove; \
    fi \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /root/.cache

# The platform's user, 10001:10001 as the chart runs it (runAsUser/runAsGroup), also in `users` (100) like
# Ray's own user, so the base's group-readable files stay readable; /home/ray holds the Python environment,
# so it must be traversable by others too.
# Ray's dashboard probes cloud metadata services unless ray_bootstrap_config.yaml exists in the home of the
# Ray processes (sovereign.serving_contract.RAY_BOOTSTRAP_CONFIG): an empty one is in this user's home.
RUN groupadd --gid 10001 sovereign \
    && useradd --uid 10001 --gid 10001 --groups users --no-log-init --create-home \
      --home-dir /home/sovereign --shell /bin/bash sovereign \
    && chmod 0755 /home/ray \
    && touch /home/sovereign/ray_bootstrap_config.yaml \
    && chown 10001:10001 /home/sovereign/ray_bootstrap_config.yaml

# Ray's image sets HOME=/home/ray, which an ENV keeps whatever the user: point it at this user's home.
# The rest is sovereign.serving_contract.AIR_GAP_ENV (a test keeps them equal): nothing downloads or reports.
ENV HOME=/home/sovereign \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    RAY_USAGE_STATS_REPORT_URL=http://127.0.0.1:9/ \
    SOVEREIGN_HEALTH_PORT=8081

USER 10001
WORKDIR /home/sovereign

# For `docker run` of the operator only: Kubernetes ignores HEALTHCHECK (the chart's probes call the same
# /healthz). No curl in the image, so Python's urllib. Containers running Ray nodes: --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SOVEREIGN_HEALTH_PORT', '8081'), timeout=4)"]

CMD ["python", "-m", "sovereign_operator"]
