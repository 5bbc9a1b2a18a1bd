#!/bin/sh
# Docker entry of the load balancer: render nginx.conf.template (the same file `rinha up`
# renders) from the environment, then run nginx in the foreground. POSIX sh + awk only,
# so it runs on nginx:*-alpine as well as on a Debian nginx image.
#   RINHA_UPSTREAMS  space-separated instance addresses (required), e.g.
#                    "unix:/sockets/api1.sock unix:/sockets/api2.sock"
#   RINHA_LISTEN     listen address (default 9999)
#   RINHA_NGINX_USER the workers' user (`user` directive), e.g. nginx; default: none (the
#                    image's built-in default)
#   RINHA_NGINX_DIR  where the rendered config, pid and temp files go (default /tmp/rinha-nginx)
set -eu

template=$(dirname "$0")/nginx.conf.template
listen=${RINHA_LISTEN:-9999}
upstreams=${RINHA_UPSTREAMS:?set RINHA_UPSTREAMS to the instances addresses}
user=${RINHA_NGINX_USER:-}
dir=${RINHA_NGINX_DIR:-/tmp/rinha-nginx}
mkdir -p "$dir/temp"

awk -v listen="$listen" -v upstreams="$upstreams" -v dir="$dir" -v user="$user" '
    BEGIN { n = split(upstreams, ups, " ") }
    /^[ \t]*#/ { print; next }
    /^\$\{RINHA_NGINX_USER\}$/ { if (user != "") print "user " user ";"; next }
    /\$\{RINHA_UPSTREAM\}/ {
        # the server line, once per instance (index/substr: an address is no regex)
        at = index($0, "${RINHA_UPSTREAM}")
        for (i = 1; i <= n; i++) print substr($0, 1, at - 1) ups[i] substr($0, at + 17)
        next
    }
    {
        gsub(/\$\{RINHA_LISTEN\}/, listen)
        gsub(/\$\{RINHA_PID\}/, dir "/nginx.pid")
        gsub(/\$\{RINHA_TEMP\}/, dir "/temp")
        print
    }
' "$template" >"$dir/nginx.conf"

# shellcheck disable=SC2016 # a literal ${RINHA_ left in the output
if grep -v '^[[:space:]]*#' "$dir/nginx.conf" | grep '\${RINHA_' >&2; then
    echo "docker-entrypoint: placeholders left unrendered in $dir/nginx.conf" >&2
    exit 1
fi

# wait (bounded) for the instances' sockets, so that the first requests do not get 502
for up in $upstreams; do
    case $up in unix:*) sock=${up#unix:} ;; *) continue ;; esac
    tries=0
    while [ ! -S "$sock" ] && [ $tries -lt 300 ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    [ -S "$sock" ] || echo "docker-entrypoint: $sock still missing, starting anyway" >&2
done

exec nginx -e stderr -p "$dir" -c "$dir/nginx.conf"
