# ruleid: secure-iot.containerfile-base-not-by-digest
FROM debian:bookworm
# ok: secure-iot.containerfile-base-not-by-digest
FROM debian:bookworm@sha256:8a8cd02c5912770b4980228a54d4aff9e4f986f1eb2525d2d371dec5232cefcc
# ok: secure-iot.containerfile-base-not-by-digest
FROM ${BASE}
# ok: secure-iot.containerfile-base-not-by-digest
FROM scratch
# ruleid: secure-iot.containerfile-base-not-by-digest
FROM ghcr.io/example/builder AS build
# ok: secure-iot.containerfile-base-not-by-digest
FROM build
# ruleid: secure-iot.containerfile-add-url
ADD https://example.com/tool.tar.gz /opt/
# ok: secure-iot.containerfile-add-url
ADD rootfs.tar /
# ruleid: secure-iot.containerfile-pipe-to-shell
RUN curl -fsSL https://example.com/install.sh | sh
# ruleid: secure-iot.containerfile-pipe-to-shell
RUN wget -qO- https://example.com/install.sh | sudo bash
# ok: secure-iot.containerfile-pipe-to-shell
RUN curl -fsSLo /tmp/install.sh https://example.com/install.sh && sha256sum -c /tmp/sums
# ruleid: secure-iot.containerfile-secret-in-env
ENV API_TOKEN=abc123
# ruleid: secure-iot.containerfile-secret-in-env
ARG DB_PASSWORD=hunter2
# ok: secure-iot.containerfile-secret-in-env
ARG DB_PASSWORD
# ok: secure-iot.containerfile-secret-in-env
ENV TOKEN_FILE_DIR=$HOME
# ruleid: secure-iot.containerfile-no-user
CMD ["/usr/bin/python3"]
# ruleid: secure-iot.containerfile-user-root
USER root
# ruleid: secure-iot.containerfile-user-root
USER 0:0
# ok: secure-iot.containerfile-user-root
USER 10001:10001
# ok: secure-iot.containerfile-no-user
ENTRYPOINT ["/usr/bin/python3", "-m", "secure_iot_server"]
