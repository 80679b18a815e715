# credit-hub container image: build with the Rust toolchain, run from a small Debian base
# as an unprivileged user. Works with a read-only root filesystem: with SQLite the service
# writes only to its data directory (/var/lib/credit-hub), mounted as a volume, and to
# /tmp (SQLite's temporary files for large sorts and index builds; mount a tmpfs); with
# PostgreSQL nothing is written locally.
#
#   docker build -t credit-hub:latest .

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the service does not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
# Build settings for the bundled SQLite (memory statistics off).
COPY .cargo .cargo
COPY proto proto
COPY migrations migrations
COPY models models
COPY policies policies
COPY tests/vectors tests/vectors
# Every target Cargo.toml declares must exist for cargo to read it: a stub for each
# [[bench]] (their sources are not part of the image), named from the manifest itself.
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && for b in $(awk '/^\[\[bench\]\]/ { bench = 1; next } bench && /^name/ { gsub(/.*= *"|"/, ""); print; bench = 0 }' Cargo.toml); do \
         echo 'fn main() {}' > benches/$b.rs; done \
    && cargo build --release --locked --bin credit-hub || true
COPY src src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin credit-hub

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 credit-hub \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin credit-hub \
    && mkdir -p /var/lib/credit-hub /etc/credit-hub \
    && chown 10001:10001 /var/lib/credit-hub
COPY --from=build /src/target/release/credit-hub /usr/local/bin/credit-hub
COPY models /etc/credit-hub/models
USER 10001:10001
ENV CREDIT_HUB_DATA_DIR=/var/lib/credit-hub \
    CREDIT_HUB_MODELS_DIR=/etc/credit-hub/models \
    CREDIT_HUB_LISTEN=0.0.0.0:50051 \
    CREDIT_HUB_METRICS_LISTEN=0.0.0.0:9090 \
    CREDIT_HUB_LOG_FORMAT=json
VOLUME ["/var/lib/credit-hub"]
EXPOSE 50051 9090
ENTRYPOINT ["credit-hub"]
CMD ["serve"]
