# syntax=docker/dockerfile:1
#
# hwstate: one static binary on a distroless base, run as non-root.
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse HEAD)" -t hwstate .
#   docker run --rm hwstate version
# The build context has no .git (.dockerignore), so Go cannot stamp the commit itself: COMMIT
# passes it in. .github/workflows/release.yml builds it for linux/amd64 and linux/arm64.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# Cross-compiled on the build machine for the target platform (no emulation for the build).
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
    -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/hwstate ./cmd/hwstate

# static-debian12 has CA certificates (for Graph and sign-in over TLS) and tzdata, no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hwstate /usr/local/bin/hwstate
USER nonroot:nonroot
# /healthz, /readyz, /metrics
EXPOSE 8080
ENV HWSTATE_HTTP_ADDR=:8080
ENTRYPOINT ["/usr/local/bin/hwstate"]
CMD ["run"]
