# CI-only stand-in for prom/prometheus, built offline from Debian's
# `prometheus` package (ci/build-prometheus-image.sh stages rootfs/: the
# binary, the libraries `ldd` lists, an empty TSDB directory). Same
# entrypoint, user and paths as the upstream image, so the compose file's
# prometheus service runs it unchanged.
FROM scratch
COPY rootfs/ /
COPY --chown=65534:65534 data/ /prometheus/
USER 65534:65534
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
