# shoal's container image: one static-enough binary on a distroless base.
#   docker build -t shoal .
#   docker run --rm -p 8080:8080 shoal up --demo     (listens on 127.0.0.1 in
#   the demo config: give a config with `listen: 0.0.0.0:8080` to reach it;
#   `shoal deploy compose|kubernetes` writes one)
# An app image that runs shoal as its entrypoint copies the binary:
#   COPY --from=shoal /usr/local/bin/shoal /usr/local/bin/shoal

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin shoal \
    && install -D -m 0755 target/release/shoal /out/shoal

# glibc, CA certificates, no shell, no package manager; user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/shoal /usr/local/bin/shoal
USER 65532:65532
EXPOSE 8080 9090
# shoal drains on SIGTERM: /ready turns 503, in-flight requests finish,
# the instances stop; give `docker stop -t` shutdown.delay + grace + margin.
STOPSIGNAL SIGTERM
# `shoal status` asks the admin API and exits non-zero when no backend is
# healthy; it reads the admin address and token from the same config.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/shoal", "status", "-c", "/etc/shoal/shoal.yaml"]
ENTRYPOINT ["/usr/local/bin/shoal"]
CMD ["up", "-c", "/etc/shoal/shoal.yaml"]
