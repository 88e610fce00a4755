# Helpers the CI scripts share (sourced, not run).

# start_server BIN LOG ARGS...: starts `BIN serve ARGS...` on a port the kernel picks, waits
# until it answers /health, and sets `pid` and `addr` (host:port). A port picked here could be
# taken: 20000-39999 overlaps the ephemeral range (32768-60999), and a fuzz run once failed on
# "Address already in use".
start_server() {
  local bin=$1 log=$2
  shift 2
  "$bin" serve --bind 127.0.0.1:0 --log-format json "$@" > "$log" 2>&1 &
  pid=$!
  addr=
  for _ in $(seq 1 300); do
    addr=$(grep -o '"bind":"[^"]*"' "$log" | head -1 | cut -d'"' -f4 || true)
    if [ -n "$addr" ] && curl -fsS "http://$addr/health" > /dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "FAIL: the server did not come up:"
  cat "$log"
  return 1
}
