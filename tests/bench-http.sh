#!/usr/bin/env bash
# `make bench` (HTTP): GET of a 1 GiB file from nginx on loopback into /dev/null, by
# build/init (`imprint get -o /dev/null`) and by curl in the same run (medians of five); MB/s, the ratio
# (budget: imprint >= 0.9x curl), and the bytes the HTTP client adds to the init
# (build/init against the same build of BENCH_BASE, the commit before the client).
set -euo pipefail
init=$1 base=${BENCH_BASE:-a473c3c}
size=$((1024 * 1024 * 1024))
dir=$(mktemp -d /tmp/imh-bench.XXXXXX)
nginx_pid=
cleanup() {
	[[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p "$dir/www" "$dir/tmp"
# Random bytes (not a sparse file): both clients move real data through the page cache.
head -c $size /dev/urandom > "$dir/www/1g.bin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; user root;
pid $dir/nginx.pid; error_log $dir/error.log;
events { worker_connections 16; }
http {
  access_log off; sendfile on; client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  server { listen 127.0.0.1:$port; root $dir/www; }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" & nginx_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break; sleep 0.05; done
url="http://127.0.0.1:$port/1g.bin"
cat "$dir/www/1g.bin" > /dev/null # warm the page cache for both

seconds() { # command...: run once, print the wall time in seconds
	local start end
	start=$(date +%s.%N)
	"$@"
	end=$(date +%s.%N)
	echo "$end - $start" | bc -l
}
# Five runs of each, alternating, and the medians: one GET takes a third of a second, and a
# single run of either moved the ratio from 0.86x to 1.67x on this 2-core machine.
median() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
curls=() imprints=()
for _ in 1 2 3 4 5; do
	curls+=("$(seconds curl -sS -o /dev/null "$url")")
	imprints+=("$(seconds "$init" get "$url" -o /dev/null)")
done
t_curl=$(median "${curls[@]}")
t_imprint=$(median "${imprints[@]}")
mbps() { printf '%.0f' "$(echo "$size / $1 / 1000000" | bc -l)"; }
ratio=$(echo "$t_curl / $t_imprint" | bc -l)
printf 'GET 1 GiB from nginx on loopback into /dev/null\n'
printf '  curl      %6s MB/s  (%.2f s)\n' "$(mbps "$t_curl")" "$t_curl"
printf '  imprint   %6s MB/s  (%.2f s)\n' "$(mbps "$t_imprint")" "$t_imprint"
printf '  ratio     %.2fx curl (budget >= 0.90x)\n' "$ratio"

# The client's bytes: build/init against the same build of the base commit.
if git cat-file -e "$base^{commit}" 2>/dev/null; then
	git archive "$base" | tar -x -C "$dir" --one-top-level=base
	# The base's own build: its linker/cargo-build.sh, or (older commits) its rustflags.
	if [ -e "$dir/base/linker/cargo-build.sh" ]; then
		(cd "$dir/base" && CARGO_TARGET_DIR="$dir/base-target" \
			linker/cargo-build.sh -q --target x86_64-unknown-linux-musl)
	else
		flags="$(tr '\n' ' ' < "$dir/base/linker/rustflags") --remap-path-prefix=$dir/base=imprint"
		eh="$dir/base/linker/discard-eh-frame.ld"
		[ -e "$eh" ] && flags+=" -C link-arg=-Wl,-T,$eh"
		(cd "$dir/base" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$dir/base-target" \
			cargo build -q --release --locked --target x86_64-unknown-linux-musl)
	fi
	before=$(stat -c %s "$dir/base-target/x86_64-unknown-linux-musl/release/imprint")
	after=$(stat -c %s "$init")
	printf 'build/init: %d bytes; %d at %s: %+d bytes\n' "$after" "$before" "$base" $((after - before))
fi
echo "$ratio >= 0.9" | bc -l | grep -q 1 || { echo "imprint is below 0.9x curl"; exit 1; }
