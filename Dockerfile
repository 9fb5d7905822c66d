# syntax=docker/dockerfile:1
# One Dockerfile, one target per binary; all are static binaries on an empty (scratch) base:
#   docker build --target upstream   -t gracelab/upstream:dev .
#   docker build --target downstream -t gracelab/downstream:dev .
#   docker build --target gracelab   -t gracelab/gracelab:dev .    # the load pods of drill --cluster
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY cmd/ cmd/
COPY internal/ internal/
ENV CGO_ENABLED=0 GOFLAGS=-trimpath

FROM build AS build-upstream
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/upstream ./cmd/upstream

FROM build AS build-gracelab
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/gracelab ./cmd/gracelab

FROM build AS build-downstream
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/downstream ./cmd/downstream

# The load pods run `gracelab load --stream`; the CA bundle is for an https:// target.
FROM scratch AS gracelab
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build-gracelab /out/gracelab /gracelab
USER 65532:65532
ENTRYPOINT ["/gracelab"]

# scratch has no shell, so the exec-form ENTRYPOINT makes the binary PID 1 and SIGTERM reaches
# it directly. The CA bundle is only for an https:// UPSTREAM_URL.
FROM scratch AS upstream
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build-upstream /out/upstream /upstream
USER 65532:65532
EXPOSE 7000
ENTRYPOINT ["/upstream"]

FROM scratch AS downstream
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build-downstream /out/downstream /downstream
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["/downstream"]
