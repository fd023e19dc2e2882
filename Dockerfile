# hydra's image: one compiled executable on a minimal base.
#
#   docker build -t ghcr.io/hydra-cni/hydra:0.1.0 .
#
# The build stage needs the network (Deno fetches the npm dependencies named in deno.json).
# The executable links against glibc (and uses libc through FFI for netlink), so the runtime
# stage is a distroless image that carries glibc, plus libnftables for the policy role, and nothing
# else: no shell, no package manager.

ARG DENO_VERSION=2.9.6

FROM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that source edits reuse the cached layer. --frozen: exactly what the
# committed lockfile says, or the build fails.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY . .
RUN deno task compile && ./dist/hydra version

# libnftables and the libraries it links, for `hydra policy sync` (it loads the library through
# FFI), from the same Debian release as the runtime base.
FROM debian:12-slim AS nft
RUN apt-get update && apt-get install -y --no-install-recommends libnftables1 \
  && mkdir /nft \
  && cp -L $(dpkg -L libnftables1 libnftnl11 libmnl0 libjansson4 libxtables12 libgmp10 \
    | grep -E '\.so\.[0-9]+$') /nft/

FROM gcr.io/distroless/cc-debian12
# The version the image is published as (`docker build --build-arg VERSION=...`); the executable
# reports its own with `hydra version`.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hydra" \
      org.opencontainers.image.description="Multi-network pod networking for Kubernetes: meta-CNI, built-in plugins, IPAM, NRI plugin, router, node daemon" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# hydra_build_info's revision label.
ENV HYDRA_REVISION=${REVISION}
COPY --from=nft /nft/ /usr/lib/
COPY --from=build /src/dist/hydra /usr/local/bin/hydra
# The installer DaemonSet's command; the other roles set `command: [/usr/local/bin/hydra]`.
ENTRYPOINT ["/usr/local/bin/hydra", "install"]
