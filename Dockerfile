# Multi-stage build of the operator image (not buildable on machines without a Docker engine).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kommander-operator

# Helm's engine, which renders chart apps: a Go helper beside the operator's binary.
FROM golang:1.26-bookworm AS helm-render
WORKDIR /src
COPY helm-render/ .
RUN CGO_ENABLED=0 go build -ldflags "-X helm.sh/helm/v3/internal/version.version=v3.22.0" -o /kommander-helm-render .

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kommander-operator /usr/local/bin/kommander-operator
COPY --from=helm-render /kommander-helm-render /usr/local/bin/kommander-helm-render
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kommander-operator"]
CMD ["run"]
