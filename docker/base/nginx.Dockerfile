# Local stand-in for nginx:*-alpine: Debian bookworm's nginx, logging to stderr.
ARG MINBASE=rinha-local/bookworm:minbase
FROM ${MINBASE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 9999
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]
