# Multi-stage build of the operator image (not buildable on machines without a Docker engine).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin kommander-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kommander-operator /usr/local/bin/kommander-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kommander-operator"]
CMD ["run"]
