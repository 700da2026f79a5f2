# syntax=docker/dockerfile:1
#
# coinledger: a static binary on a distroless base, run as an unprivileged
# user. The version is stamped from the build argument VERSION:
#
#   docker build --build-arg VERSION="$(git describe --always --dirty)" .
#
# Targets: the last stage (the service) is the default; `bitcoind` is a
# Bitcoin Core image with the binary added for its walletnotify hook
# (`coinledger notify`), used by docker-compose.yml.
#
# Base images are pinned by exact version tag. Pin them by digest
# (image:tag@sha256:...) where your registry mirror lets you look digests
# up; this repository's CI has no registry access to do it for you.

FROM golang:1.26.8-bookworm AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/coinledger ./cmd/coinledger \
    && mkdir -p /out/data

FROM btcpayserver/bitcoin:29.1 AS bitcoind
COPY --from=build /out/coinledger /usr/local/bin/coinledger

FROM gcr.io/distroless/static-debian12:nonroot AS service
COPY --from=build /out/coinledger /coinledger
# The data directory (keys, snapshots, the embedded stores) belongs to the
# unprivileged user, so that a named volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV COINLEDGER_DATA_DIR=/data \
    COINLEDGER_LISTEN=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/coinledger", "healthcheck"]
ENTRYPOINT ["/coinledger"]
CMD ["serve"]
