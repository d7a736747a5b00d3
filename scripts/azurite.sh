# Sourced by scripts/run: the storage emulator, Azurite (from npm), for USER_DAILY_TOKENS
# without a storage account.
#
# start_azurite LOCATION PORT starts Azurite's Table service on 127.0.0.1:PORT, or on a free
# port when PORT is in use, keeping its data in LOCATION; returns once Azurite says it has
# started, with AZURITE_PID and AZURITE_CONNECTION_STRING set (an account of its own, whose key
# is made for this run: no key is written anywhere). When Azurite does not start (it exits, or
# says nothing within 30 s), one line says so and it returns 1.
start_azurite() {
  local location="$1" port="$2" wanted="$2"
  local python="${VENV:-.venv}/bin/python"
  if ! "$python" -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1]))).close()' "$port" 2>/dev/null; then
    port="$("$python" -c 'import socket; print(socket.create_server(("127.0.0.1", 0)).getsockname()[1])')"
  fi
  local account=relaylocal key log
  key="$(head -c 64 /dev/urandom | base64 -w0)"
  log="$(mktemp)"  # what Azurite says, until it says it started
  AZURITE_ACCOUNTS="$account:$key" node_modules/.bin/azurite-table --tableHost 127.0.0.1 --tablePort "$port" \
    --location "$location" --skipApiVersionCheck --disableTelemetry --silent >"$log" 2>&1 &
  AZURITE_PID=$!
  local tries=0
  until grep -q "successfully started" "$log"; do
    if ! kill -0 "$AZURITE_PID" 2>/dev/null || ((++tries > 300)); then
      kill "$AZURITE_PID" 2>/dev/null || true
      echo "error: Azurite (the storage emulator) did not start on 127.0.0.1:$port: $(grep -v '^\s*$' "$log" | tail -n 1)" >&2
      rm -f "$log"
      unset AZURITE_PID
      return 1
    fi
    sleep 0.1
  done
  rm -f "$log"
  AZURITE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$key;TableEndpoint=http://127.0.0.1:$port/$account"
  local moved=""
  [ "$port" = "$wanted" ] || moved=" (127.0.0.1:$wanted is in use)"
  echo "Azurite (the storage emulator) keeps the relay's state (budgets, answers) in $location/, on 127.0.0.1:$port$moved"
}
