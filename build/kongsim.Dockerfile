# syntax=docker/dockerfile:1
# Image of kongsim, the project's fake Kong (reads the same KONG_* settings as the Kong image).
# Build from the repository root, which holds the go.work:
#   docker build -f build/kongsim.Dockerfile -t kongsim:dev .
ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# Module files first, so dependency downloads are cached across source edits.
COPY go.work go.work.sum* ./
COPY controller/go.mod controller/go.sum* controller/
COPY sim/go.mod sim/go.sum* sim/
COPY chaos/go.mod chaos/go.sum* chaos/
COPY e2e/go.mod e2e/go.sum* e2e/
COPY cmd/go.mod cmd/go.sum* cmd/
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/kongsim ./cmd/kongsim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kongsim /usr/local/bin/kongsim
# `kong quit --wait=15`, Kong's recommended preStop hook, finds kong on PATH
# (kongsim answers to either name).
COPY --from=build /out/kongsim /usr/local/bin/kong
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kongsim"]
