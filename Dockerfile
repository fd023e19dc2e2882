# hydra's image: one compiled executable on a minimal base.
#
#   docker build -t ghcr.io/hydra-cni/hydra:0.1.0 .
#
# The build stage needs the network (Deno fetches the npm dependencies named in deno.json).
# The executable links against glibc (and uses libc through FFI for netlink), so the runtime
# stage is a distroless image that carries glibc and nothing else: no shell, no package manager.

ARG DENO_VERSION=2.9.6

FROM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src
# Dependencies first, so that source edits reuse the cached layer.
COPY deno.json deno.lock* ./
RUN deno install --frozen=false
COPY . .
RUN deno task compile && ./dist/hydra version

FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/dist/hydra /usr/local/bin/hydra
# The installer DaemonSet's command; the other roles set `command: [/usr/local/bin/hydra]`.
ENTRYPOINT ["/usr/local/bin/hydra", "install"]
