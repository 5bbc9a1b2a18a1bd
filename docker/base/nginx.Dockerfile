# Local stand-in for nginx:*-alpine: Debian bookworm's nginx, logging to stderr, with the
# official images' worker user `nginx` (uid and gid 101): docker-compose.yml gives the
# instances' sockets to that group.
ARG MINBASE=rinha-local/bookworm:minbase
FROM ${MINBASE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && groupadd --system --gid 101 nginx \
 && useradd --system --uid 101 --gid nginx --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin nginx
EXPOSE 9999
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]
