# syntax=docker/dockerfile:1
#
# hwstate: one static binary on a distroless base, run as non-root.
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t hwstate .
#   docker run --rm hwstate version

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/hwstate ./cmd/hwstate

# static-debian12 has CA certificates (for Graph and sign-in over TLS) and tzdata, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hwstate /usr/local/bin/hwstate
USER nonroot:nonroot
# /healthz, /readyz, /metrics
EXPOSE 8080
ENV HWSTATE_HTTP_ADDR=:8080
ENTRYPOINT ["/usr/local/bin/hwstate"]
CMD ["run"]
