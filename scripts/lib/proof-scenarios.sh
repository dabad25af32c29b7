# shellcheck shell=bash
# The scenarios of scripts/proof (sourced by it; each runs in a subshell with $SC its directory).
# Every scenario ends with `row`, after the ledger audit (`audit`) of what the ERP booked.

EVENTS="${EVENTS:-}"

# node_of_port DIRS... : the dir among DIRS whose AMQP port is $PORT_Q
node_dir_by_port() {
    local d
    for d in "$@"; do
        [ "$(read_env "$d/node.env" WHSYNC_AMQP_PORT 2>/dev/null || true)" = "$PORT_Q" ] && { echo "$d"; return 0; }
    done
    return 1
}
node_dir_by_name() { # node_dir_by_name NODENAME DIRS...
    local name="$1" d
    shift
    for d in "$@"; do
        [ "$(read_env "$d/node.env" RABBITMQ_NODENAME)" = "$name" ] && { echo "$d"; return 0; }
    done
    return 1
}
live_dir() { # live_dir DIRS...: the first whose beam runs
    local d
    for d in "$@"; do
        pid_alive "$(beam_pid_of "$d")" beam.smp && { echo "$d"; return 0; }
    done
    return 1
}
# worker_node PID DIRS...: the node dir the process is connected to (its first AMQP connection)
worker_node() {
    local pid="$1" port d
    shift
    for port in $(ss -tnpH state established 2>/dev/null | awk -v p="pid=$pid," '$0 ~ p {n = split($4, a, ":"); print a[n]}'); do
        for d in "$@"; do
            [ "$(read_env "$d/node.env" WHSYNC_AMQP_PORT)" = "$port" ] && { echo "$d"; return 0; }
        done
    done
    return 1
}
# wait_more N LIMIT: until the ledger holds N more documents than now (or LIMIT s); prints seconds taken
wait_more() {
    local target start=$SECONDS n
    target=$(($(erp_documents_count) + $1))
    while :; do
        n="$(erp_documents_count || echo 0)"
        [ "$n" -ge "$target" ] && break
        [ $((SECONDS - start)) -ge "$2" ] && break
        sleep 0.5
    done
    echo $((SECONDS - start))
}
kill_node() { # kill_node DIR: SIGKILL of the node's beam (the VM, no goodbye to the cluster)
    local pid
    pid="$(beam_pid_of "$1")"
    pid_alive "$pid" beam.smp || return 1
    kill -KILL "$pid"
    while pid_alive "$pid" beam.smp; do sleep 0.1; done
}
start_workers() { # the three stream workers on $STORE_URL
    start_worker inventory inventory-worker "$@"
    start_worker shipment shipment-worker "$@"
    start_worker receipt receipt-worker "$@"
    local w
    for w in inventory shipment receipt; do
        wait_ready_worker "$w" 120 || { tail -n 30 "$SC/$w.log" >&2; return 1; }
    done
}
# stop_workers: SIGTERM to each worker (60 s each to exit); STOP_BAD names those that did not exit 0
stop_workers() {
    local w rc
    STOP_BAD=""
    for w in "${!WPID[@]}"; do
        kill -TERM "${WPID[$w]}" 2>/dev/null || continue
        rc=0
        timeout 60 tail --pid="${WPID[$w]}" -f /dev/null || rc=timeout
        [ "$rc" = timeout ] || wait "${WPID[$w]}" 2>/dev/null || rc=$?
        [ "$rc" = 0 ] || STOP_BAD+="$w exit $rc "
    done
    STOP_BAD="${STOP_BAD% }"
}

# replayed_letters AMQP_URL [LETTERS_JSON]: the eventIds of the retries-exhausted letters that were
# replayed (by the replay worker's automatic replay or an operator), in $SC/replayed.txt, which the
# audit reads: their postings below their key's position are by design (DESIGN §6), counted apart.
# LETTERS_JSON: `whsync dlq list --json` already taken (else it is taken here).
replayed_letters() {
    local letters="${2:-}"
    [ -n "$letters" ] || letters="$(STORE_URL="$STORE_URL" AMQP_URL="$1" LOG_LEVEL=warning "$BIN/whsync" dlq list --json \
        --reason retries-exhausted --limit 100000 2>>"$SC/whsync.log" || echo '[]')"
    jq -r '.[] | select(.reason == "retries-exhausted" and .replayCount > 0) | .eventId // empty' <<<"$letters" >"$SC/replayed.txt"
}

# finish NAME FAULTS OPERATOR [FAILED]: SIGTERM to the workers (each must exit 0), the ledger audit
# against the manifest, the row (FAILED 1: a check of the scenario's own failed)
finish() {
    local bad
    stop_workers
    bad="$STOP_BAD"
    audit --manifest "$SC/manifest.json"
    row "$1" "$PUBLISHABLE" "$2${bad:+; graceful stop: $bad}" "$A_LOST" "$A_TWICE" "$(order_cell)" "$A_STALL" "$3" \
        "$(verdict "$([ -z "$bad" ] && [ "$A_BOOKED" = "$EXPECTED" ] && [ "${4:-0}" = 0 ] && echo 0 || echo 1)")"
}

single_broker() { # one node with the topology; sets AMQP, WORKER_AMQP_URL, PUBLISH_AMQP_URL
    broker_start "$SC/broker"
    AMQP="$(read_env "$SC/broker/broker.env" AMQP_URL)"
    WORKER_AMQP_URL="$AMQP" PUBLISH_AMQP_URL="$AMQP"
    apply_topology "$AMQP"
}

# ---- 3-node cluster ----------------------------------------------------------------------------
cluster_run() { # cluster_run NAME FAULTS (1: leader loss; 3: leader, the worker's node, a partition)
    local name="$1" faults="$2" n d
    local dirs=("$SC/n1" "$SC/n2" "$SC/n3")
    log_info "starting a 3-node cluster"
    broker_start "$SC/n1" --cluster
    broker_start "$SC/n2" --join "$SC/n1"
    broker_start "$SC/n3" --join "$SC/n1"
    local -A port
    for d in "${dirs[@]}"; do port[$d]="$(read_env "$d/broker.env" AMQP_PORT)"; done
    apply_topology "amqp://guest:guest@127.0.0.1:${port[$SC/n1]}/"
    local leader leader_dir members
    leader="$(mgmt "$SC/n1" "/api/queues/%2F/erp.inventory" | jq -r .leader)"
    members="$(mgmt "$SC/n1" "/api/queues/%2F/erp.inventory" | jq -r '.members | length')"
    leader_dir="$(node_dir_by_name "$leader" "${dirs[@]}")"
    log_info "erp.inventory: $members members, leader $leader"
    [ "$members" = 3 ] || { log_error "erp.inventory has $members members, not 3"; return 1; }
    # the worker's URL lists the two other nodes first: losing the leader is not losing its connection
    local hosts=""
    for d in "${dirs[@]}"; do [ "$d" = "$leader_dir" ] || hosts+="127.0.0.1:${port[$d]},"; done
    hosts+="127.0.0.1:${port[$leader_dir]}"
    WORKER_AMQP_URL="amqp://guest:guest@$hosts/"
    PUBLISH_AMQP_URL="$WORKER_AMQP_URL"

    simulate 31 "${EVENTS:-$([ "$faults" = 1 ] && echo 3000 || echo 8000)}" --out-of-order 0.05 --duplicates 0.03
    start_erp --latency-ms 1-4
    STORE_URL="sqlite:$SC/store.db"
    start_workers
    split -n "l/$((faults + 1))" -d "$SC/events.jsonl" "$SC/chunk-"
    local chunks=("$SC"/chunk-*) faults_text="" operator="none" recovery
    publish_file "${chunks[0]}"
    wait_more 300 120 >/dev/null

    # 1: the leader of erp.inventory dies
    log_info "fault 1: SIGKILL of $leader, leader of erp.inventory"
    kill_node "$leader_dir"
    publish_file "${chunks[1]}" &
    local pub=$!
    recovery="$(wait_more 200 180)"
    wait "$pub" || log_warn "publishing chunk 2 failed"
    local newleader
    newleader="$(mgmt "$(live_dir "${dirs[@]}")" "/api/queues/%2F/erp.inventory" | jq -r .leader)"
    faults_text="SIGKILL of erp.inventory's leader node (new leader $newleader, 200 postings ${recovery}s later)"
    log_info "new leader $newleader; 200 more postings ${recovery}s after the kill; restarting the node"
    broker_start "$leader_dir"

    if [ "$faults" = 3 ]; then
        # 2: the node the inventory worker is connected to dies
        local wdir
        wdir="$(worker_node "${WPID[inventory]}" "${dirs[@]}")" || { log_error "cannot tell the inventory worker's node"; return 1; }
        log_info "fault 2: SIGKILL of $(read_env "$wdir/node.env" RABBITMQ_NODENAME), the inventory worker's node"
        kill_node "$wdir"
        publish_file "${chunks[2]}" &
        pub=$!
        recovery="$(wait_more 200 180)"
        wait "$pub" || log_warn "publishing chunk 3 failed"
        local moved
        moved="$(worker_node "${WPID[inventory]}" "${dirs[@]}" || echo none)"
        faults_text+="; SIGKILL of the worker's node (it moved to ${moved##*/}, 200 postings ${recovery}s later)"
        broker_start "$wdir"

        # 3: a partition: the node the worker uses now is cut off from the others (its distribution
        # refuses them: another cookie for each peer), pause_minority pauses it, then it heals
        local pdir others=() peers
        pdir="$(worker_node "${WPID[inventory]}" "${dirs[@]}")" || pdir="$SC/n3"
        for d in "${dirs[@]}"; do [ "$d" = "$pdir" ] || others+=("'$(read_env "$d/node.env" RABBITMQ_NODENAME)'"); done
        peers="[$(IFS=,; echo "${others[*]}")]"
        log_info "fault 3: partition of ${pdir##*/} from $peers for 40 s"
        "$BROKER" ctl "$pdir" eval "[begin erlang:set_cookie(P, whsync_partitioned), erlang:disconnect_node(P) end || P <- $peers], ok." >>"$SC/brokers.log" 2>&1
        publish_file "${chunks[3]}" &
        pub=$!
        recovery="$(wait_more 200 180)"
        sleep $((recovery < 40 ? 40 - recovery : 0))
        "$BROKER" ctl "$pdir" eval "[begin erlang:set_cookie(P, erlang:get_cookie()), net_adm:ping(P) end || P <- $peers]." >>"$SC/brokers.log" 2>&1
        wait "$pub" || log_warn "publishing chunk 4 failed"
        faults_text+="; partition of ${pdir##*/} (paused by pause_minority) for 40 s, 200 postings ${recovery}s after the cut"
    fi

    wait_posted "$EXPECTED" "$(live_dir "${dirs[@]}")" 600 || true
    finish "$name" "$faults_text" "$operator"
}
scenario_cluster() { cluster_run cluster 3; }
scenario_cluster_leader() { cluster_run cluster-leader 1; }

# ---- SIGKILLs with a failing ERP -----------------------------------------------------------------
scenario_kills() {
    single_broker
    local amqp="$AMQP"
    simulate 41 "${EVENTS:-$((KILLS * 150))}" --out-of-order 0.05 --duplicates 0.03
    start_erp --error-rate 0.1 --lost-response-rate 0.1 --fault-seed 41
    STORE_URL="sqlite:$SC/store.db"
    # KILLS_PREFETCH: the inventory worker's PREFETCH (the worker's default, 100, when unset)
    local prefetch=()
    [ -z "${KILLS_PREFETCH:-}" ] || prefetch=(PREFETCH="$KILLS_PREFETCH")
    start_workers "${prefetch[@]}"
    start_worker replay replay-worker
    # With 30 kills or more, the last OUTAGE_KILLS (22: more than the delivery limit, 20) come
    # while the ERP is down: the circuit is open, the deliveries in hand wait unacked, and every
    # kill hands them back: a message caught in many kills. RabbitMQ dead-letters it on its 21st
    # return; but each restart first posts what it holds, and the failures before the circuit
    # opens (at least 4) turn their messages into retry copies (new messages, counts of 0). Runs
    # reach it now and then (56 letters with KILLS=50 on 2026-12-07); the limit scenario always.
    local outage_kills=0
    [ "$KILLS" -lt 30 ] || outage_kills="${OUTAGE_KILLS:-22}"
    local random_kills=$((KILLS - outage_kills))
    # the day in parts, one published before each random kill (every kill lands mid-stream) and
    # one when the ERP goes down
    split -n "l/$((random_kills + 1))" -a 3 -d "$SC/events.jsonl" "$SC/part-"
    local parts=("$SC"/part-*) k delay pid
    RANDOM=41
    for ((k = 1; k <= KILLS; k++)); do
        if [ "$k" -le "$random_kills" ]; then
            publish_file "${parts[$((k - 1))]}"
            # a random moment: a third of them early in the worker's life (before it settled its
            # first prefetch), the rest later
            if [ $((RANDOM % 3)) = 0 ]; then delay="0.$((3 + RANDOM % 7))"; else delay="$((1 + RANDOM % 4)).$((RANDOM % 10))"; fi
        else
            if [ "$k" = $((random_kills + 1)) ]; then
                log_info "ERP down (outage) for the last $outage_kills kills"
                curl -fsS -X POST "$ERP_URL/admin/faults" -d '{"outage": true}' >/dev/null
                publish_file "${parts[$random_kills]}"
            fi
            delay="$((2 + RANDOM % 3)).$((RANDOM % 10))"  # after the worker took its prefetch
        fi
        sleep "$delay"
        pid="${WPID[inventory]}"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        start_worker inventory inventory-worker "${prefetch[@]}"
    done
    [ "$outage_kills" -gt 0 ] || publish_file "${parts[$random_kills]}"
    if [ "$outage_kills" -gt 0 ]; then
        curl -fsS -X POST "$ERP_URL/admin/faults" -d '{"outage": false}' >/dev/null
        log_info "ERP back"
    fi
    log_info "$KILLS SIGKILLs done; waiting for the stream to settle"
    wait_ready_worker inventory 120 || true
    # settled (queues idle, the ledger still for 10 s): what is not posted now waits for an
    # operator, who replays the delivery-limit letters at once (waiting for the whole ledger first
    # counted that wait, STALL_LIMIT, as the stall)
    wait_idle "$SC/broker" || true
    # what the broker's delivery limit did: letters the replay worker drained with reason delivery-limit
    sleep 5
    local letters operator="none" limit_letters exhausted
    letters="$(STORE_URL="$STORE_URL" AMQP_URL="$amqp" LOG_LEVEL=warning "$BIN/whsync" dlq list --json 2>>"$SC/whsync.log" || echo '[]')"
    echo "$letters" >"$SC/dead-letters.json"
    replayed_letters "$amqp" "$letters"
    limit_letters="$(jq '[.[] | select(.reason == "delivery-limit")] | length' <<<"$letters")"
    exhausted="$(jq '[.[] | select(.reason == "retries-exhausted")] | length' <<<"$letters")"
    if [ "$limit_letters" -gt 0 ]; then
        operator="whsync dlq replay --reason delivery-limit ($limit_letters letters)"
        log_info "$limit_letters delivery-limit dead letters: replaying them as an operator would"
        STORE_URL="$STORE_URL" AMQP_URL="$amqp" LOG_LEVEL=warning "$BIN/whsync" dlq replay --reason delivery-limit \
            >>"$SC/whsync.log" 2>&1 || log_warn "whsync dlq replay failed"
    fi
    wait_posted "$EXPECTED" "$SC/broker" 600 || true
    local stats
    stats="$(curl -fsS "$ERP_URL/stats" | jq -r '"\(.totals.injectedFaults // 0) injected ERP faults, \(.totals.duplicates // 0) 409s"')"
    finish kills "$KILLS SIGKILLs of inventory-worker ($outage_kills of them while the ERP was down${KILLS_PREFETCH:+; PREFETCH $KILLS_PREFETCH}); ERP 10% errors + 10% lost answers ($stats); $limit_letters dead-lettered by the delivery limit, $exhausted retries-exhausted (auto-replayed)" "$operator"
}

# ---- The delivery limit: messages caught in many kills -------------------------------------------
# The kills scenario reaches the limit only now and then: each restart acks most of what it holds
# (retry copies of the first failures, and the holds of keys behind them). Here every event has a key of its
# own (nothing is held) and the ERP is down throughout, so each restart rescues only the first few
# into retry copies before the circuit opens; the rest wait in hand and go back at the kill.
scenario_limit() {
    single_broker
    local amqp="$AMQP" events="${LIMIT_EVENTS:-1000}" kills="${LIMIT_KILLS:-26}" prefetch="${LIMIT_PREFETCH:-500}"
    $PY "$REPO/scripts/lib/proof_backlog.py" generate --dir "$SC" --events "$events" --keys "$events" --held 1 \
        --out-of-order 0 --seed 29 >"$SC/generate.json"
    STORE_URL="sqlite:$SC/store.db"
    start_erp
    curl -fsS -X POST "$ERP_URL/admin/faults" -d '{"outage": true}' >/dev/null
    publish_file "$SC/events.jsonl"
    publish_file "$SC/held-last.jsonl"
    start_worker replay replay-worker
    local k pid
    for ((k = 1; k <= kills; k++)); do
        start_worker inventory inventory-worker PREFETCH="$prefetch"
        wait_ready_worker inventory 120 || { tail -n 30 "$SC/inventory.log" >&2; return 1; }
        sleep 3  # it took its prefetch, posted, and the circuit opened
        pid="${WPID[inventory]}"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    sleep 5  # the replay worker drains what the broker dead-lettered
    local letters limit_letters
    letters="$(STORE_URL="$STORE_URL" AMQP_URL="$amqp" LOG_LEVEL=warning "$BIN/whsync" dlq list --json --limit 100000 2>>"$SC/whsync.log" || echo '[]')"
    limit_letters="$(jq '[.[] | select(.reason == "delivery-limit")] | length' <<<"$letters")"
    log_info "$kills SIGKILLs with the ERP down: $limit_letters delivery-limit dead letters stored; the ERP comes back"
    curl -fsS -X POST "$ERP_URL/admin/faults" -d '{"outage": false}' >/dev/null
    start_worker inventory inventory-worker PREFETCH="$prefetch"
    wait_ready_worker inventory 120 || true
    wait_idle "$SC/broker" || true
    local operator="none"
    if [ "$limit_letters" -gt 0 ]; then
        operator="whsync dlq replay --reason delivery-limit ($limit_letters letters)"
        STORE_URL="$STORE_URL" AMQP_URL="$amqp" LOG_LEVEL=warning "$BIN/whsync" dlq replay --reason delivery-limit \
            >>"$SC/whsync.log" 2>&1 || log_warn "whsync dlq replay failed"
        wait_posted "$events" "$SC/broker" 300 || true
    fi
    letters="$(STORE_URL="$STORE_URL" AMQP_URL="$amqp" LOG_LEVEL=warning "$BIN/whsync" dlq list --json --limit 100000 2>>"$SC/whsync.log" || echo '[]')"
    echo "$letters" >"$SC/dead-letters.json"
    replayed_letters "$amqp" "$letters"
    local exhausted bad
    exhausted="$(jq '[.[] | select(.reason == "retries-exhausted")] | length' <<<"$letters")"
    stop_workers
    bad="$STOP_BAD"
    audit --expected "$SC/expected.txt"
    # the scenario is there to reach the limit: without a delivery-limit letter it proved nothing
    row limit "$events ($events keys)" \
        "ERP down while $kills SIGKILLs of inventory-worker (PREFETCH $prefetch), each 3 s after it was ready; $limit_letters messages dead-lettered by the broker's delivery limit (x-delivery-limit 20) and stored by the replay worker, $exhausted retries-exhausted (auto-replayed); then the ERP back${bad:+; graceful stop: $bad}" \
        "$A_LOST" "$A_TWICE" "$(order_cell)" "$A_STALL" "$operator" \
        "$(verdict "$([ -z "$bad" ] && [ "$A_BOOKED" = "$events" ] && [ "$limit_letters" -gt 0 ] && echo 0 || echo 1)")"
}

# ---- PostgreSQL killed and restarted -----------------------------------------------------------
scenario_postgres() {
    single_broker
    local amqp="$AMQP"
    PG_DIRS+=("$SC/pg")
    "$POSTGRES" start "$SC/pg" >>"$SC/postgres.log" 2>&1 || { tail -n 20 "$SC/postgres.log" >&2; return 1; }
    STORE_URL="$(read_env "$SC/pg/postgres.env" POSTGRES_URL)"
    simulate 51 "${EVENTS:-6000}" --out-of-order 0.05 --duplicates 0.03
    start_erp --latency-ms 1-4
    start_workers
    start_worker inventory-2 inventory-worker
    start_worker shipment-2 shipment-worker
    wait_ready_worker inventory-2 120 && wait_ready_worker shipment-2 120
    publish_file "$SC/events.jsonl"
    wait_more 800 180 >/dev/null
    local pid t0 down=15 recovery
    pid="$(head -n 1 "$(read_env "$SC/pg/postgres.env" POSTGRES_DATA_DIR)/postmaster.pid")"
    log_info "SIGKILL of the PostgreSQL postmaster (pid $pid) and its backends; down for ${down}s"
    kill_tree() { local c; for c in $(ps -o pid= --ppid "$1"); do kill_tree "$c"; done; kill -KILL "$1" 2>/dev/null || true; }
    kill_tree "$pid"
    sleep "$down"
    "$POSTGRES" start "$SC/pg" >>"$SC/postgres.log" 2>&1 || { tail -n 20 "$SC/postgres.log" >&2; return 1; }
    recovery="$(wait_more 200 300)"
    wait_posted "$EXPECTED" "$SC/broker" 600 || true
    finish postgres "SIGKILL of PostgreSQL (postmaster and backends) mid-run, restarted after ${down}s; 2 inventory + 2 shipment replicas, 1 receipt; 200 postings ${recovery}s after the restart" none
}

# ---- SQLite on a filesystem that fills up --------------------------------------------------------
scenario_diskfull() {
    single_broker
    local amqp="$AMQP"
    mkdir -p "$SC/small"
    local fs="tmpfs"
    if mount -t tmpfs -o size=8m whsync-proof "$SC/small" 2>>"$SC/mount.log"; then
        MOUNTS+=("$SC/small")
    else
        truncate -s 8M "$SC/small.img" && mkfs.ext4 -q "$SC/small.img" \
            && mount -o loop "$SC/small.img" "$SC/small" 2>>"$SC/mount.log" || { cat "$SC/mount.log" >&2; return 1; }
        MOUNTS+=("$SC/small")
        fs="ext4 loop image"
    fi
    simulate 61 "${EVENTS:-5000}" --out-of-order 0.1 --duplicates 0.03
    start_erp --latency-ms 1-3
    STORE_URL="sqlite:$SC/small/store.db"
    start_workers
    publish_file "$SC/events.jsonl"
    wait_more 500 180 >/dev/null
    # fill what is left, hold it full for 30 s, then free it
    dd if=/dev/zero of="$SC/small/filler" bs=64k >/dev/null 2>&1 || true
    local before after
    before="$(erp_documents_count)"
    log_info "the store's filesystem is full ($(df -h "$SC/small" | awk 'NR == 2 {print $4}') free) at $before postings"
    sleep 30
    after="$(erp_documents_count)"
    local full_errors
    full_errors="$(cat "$SC"/inventory.log "$SC"/shipment.log "$SC"/receipt.log | grep -ci 'full\|store' || true)"
    rm -f "$SC/small/filler"
    log_info "freed; $((after - before)) postings while full"
    wait_posted "$EXPECTED" "$SC/broker" 600 || true
    local bad integrity
    stop_workers
    bad="$STOP_BAD"
    integrity="$(sqlite3 "$SC/small/store.db" 'PRAGMA integrity_check' 2>&1 | head -n 3 | tr '\n' ' ')"
    finish diskfull "SQLite store on an 8 MiB $fs filled to the last block for 30 s ($((after - before)) postings meanwhile, $full_errors store lines in the logs), then freed; integrity_check: ${integrity% }${bad:+; graceful stop: $bad}" \
        none "$([ -z "$bad" ] && [ "${integrity% }" = ok ] && echo 0 || echo 1)"
}

# ---- fuzzed bodies and headers -----------------------------------------------------------------
scenario_fuzz() {
    single_broker
    local amqp="$AMQP"
    $PY "$REPO/scripts/lib/proof_fuzz.py" --write-master-data "$SC/master-data.json" \
        --count "$FUZZ_COUNT" --gateway-count $((FUZZ_COUNT / 10))
    start_erp
    STORE_URL="sqlite:$SC/store.db"
    start_workers ACCEPT_FIRST_SEQUENCE=true
    local gport token secret
    gport="$(free_port)"
    # the gateway with a bearer token and an HMAC secret: the fuzz sends either, and bad ones
    token="proof-token-$RANDOM$RANDOM" secret="proof-hmac-secret-$(date +%s%N)-0123456789abcdef"
    printf '%s\n' "$token" >"$SC/gateway-token"
    printf '%s\n' "$secret" >"$SC/gateway-secret"
    chmod 600 "$SC/gateway-token" "$SC/gateway-secret"
    (cd "$SC" && exec env AMQP_URL="$amqp" GATEWAY_PORT="$gport" GATEWAY_TOKEN_FILE="$SC/gateway-token" \
        GATEWAY_HMAC_SECRET_FILE="$SC/gateway-secret" LOG_LEVEL=warning \
        "$BIN/wms-gateway") >>"$SC/gateway.log" 2>&1 &
    STARTED+=("$! wms-gateway")
    local gpid=$!
    wait_for_tcp 127.0.0.1 "$gport" 60 || { cat "$SC/gateway.log" >&2; return 1; }
    # RSS and the circuit gauge, sampled while the fuzz runs
    (
        while :; do
            for w in inventory shipment receipt; do
                echo "$w $(awk '/VmRSS/ {print $2}' "/proc/${WPID[$w]}/status" 2>/dev/null || echo 0) $(metric "$w" whsync_erp_circuit_open)"
            done
            sleep 2
        done
    ) >"$SC/samples.txt" 2>/dev/null &
    local sampler=$!
    $PY "$REPO/scripts/lib/proof_fuzz.py" --amqp-url "$amqp" --gateway "http://127.0.0.1:$gport" \
        --gateway-token "$token" --gateway-secret "$secret" --count "$FUZZ_COUNT" --gateway-count $((FUZZ_COUNT / 10)) \
        --seed 71 --out "$SC/fuzz.json" 2>>"$SC/fuzz.log" || { tail -n 20 "$SC/fuzz.log" >&2; kill "$sampler"; return 1; }
    wait_idle "$SC/broker" || log_warn "the queues did not settle"
    kill "$sampler" 2>/dev/null || true
    # every published message: posted, acked as a duplicate or stale, or dead-lettered with a reason
    local published posted duplicates stale letters no_reason reasons crashed="" w max_rss circuit
    published="$(jq '.amqpPublished + .gatewayAccepted' "$SC/fuzz.json")"
    posted="$(erp_documents_count)"
    duplicates=0 stale=0
    for w in inventory shipment receipt; do
        duplicates=$((duplicates + $(metric "$w" whsync_duplicates_total)))
        stale=$((stale + $(metric "$w" whsync_stale_total)))
        pid_alive "${WPID[$w]}" || crashed+="$w "
    done
    pid_alive "$gpid" wms-gateway || crashed+="wms-gateway "
    $PY "$REPO/scripts/lib/proof_fuzz.py" --amqp-url "$amqp" --drain-dead-letters --out "$SC/dead-letters.json" 2>>"$SC/fuzz.log"
    letters="$(jq .count "$SC/dead-letters.json")"
    no_reason="$(jq .withoutReason "$SC/dead-letters.json")"
    reasons="$(jq -r '.reasons | to_entries | map("\(.key) \(.value)") | join(", ")' "$SC/dead-letters.json")"
    max_rss="$(awk '{if ($2 > m) m = $2} END {printf "%d", m / 1024}' "$SC/samples.txt")"
    circuit="$(awk '$3 > 0 {n++} END {print n + 0}' "$SC/samples.txt")"
    circuit=$((circuit + $(cat "$SC"/inventory.log "$SC"/shipment.log "$SC"/receipt.log | grep -c 'circuit open' || true)))
    local unaccounted=$((published - posted - letters - duplicates - stale)) gw_unexpected gw_statuses
    gw_unexpected="$(jq .gatewayUnexpected "$SC/fuzz.json")"
    gw_statuses="$(jq -r '.gatewayStatuses | to_entries | sort_by(.key) | map("\(.key) \(.value)") | join(", ")' "$SC/fuzz.json")"
    local bad
    stop_workers
    bad="$STOP_BAD"
    audit
    A_LOST="$unaccounted"  # no manifest: a message neither posted, acked as duplicate/stale nor dead-lettered is lost
    row fuzz "$published ($(jq .amqpPublished "$SC/fuzz.json") AMQP, $(jq .gatewayAccepted "$SC/fuzz.json") events accepted by the gateway from $(jq .gatewaySent "$SC/fuzz.json") requests)" \
        "each AMQP message one of $(jq '.mutations | keys | map(select(startswith("gateway") | not)) | length' "$SC/fuzz.json") mutations of body, properties, headers or routing key, or none; gateway requests (bearer token or HMAC signature, random Content-Type): POST /events with a mutated event, POST /events:batch of 1-10 mutated events (JSON array, JSON lines, CRLF lines), and $(jq '.mutations | keys | map(select(startswith("gateway-refused:"))) | length' "$SC/fuzz.json") kinds it must refuse with a clear 4xx (no, wrong or malformed credentials, bad, stale or malformed signatures, reserved whsync-* headers, an event over 256 KiB, a batch over 4 MiB or 1000 events, empty or broken batches, other methods and paths); answers by route: $gw_statuses; answers breaking docs/gateway.md: $gw_unexpected (counts and samples in fuzz.json); outcome: $posted posted, $letters dead-lettered ($reasons), $duplicates duplicates, $stale stale; $no_reason letters without a reason; circuit opened: $circuit; crashed: ${crashed:-none}; worker RSS max ${max_rss} MiB${bad:+; graceful stop: $bad}" \
        "$A_LOST" "$A_TWICE" "$(order_cell)" "$A_STALL" "none" \
        "$(verdict "$([ -z "$bad" ] && [ -z "$crashed" ] && [ "$no_reason" = 0 ] && [ "$circuit" = 0 ] && [ "$max_rss" -lt 400 ] && [ "$gw_unexpected" = 0 ] && echo 0 || echo 1)")"
}

# ---- a memory alarm longer than consumer_timeout, then SIGTERM -----------------------------------
scenario_alarm() {
    broker_start "$SC/broker"
    # consumer_timeout 20 s (the default is 30 min): the node is restarted with it
    echo "consumer_timeout = 20000" >>"$SC/broker/rabbitmq.conf"
    "$BROKER" restart "$SC/broker" >>"$SC/brokers.log" 2>&1
    AMQP="$(read_env "$SC/broker/broker.env" AMQP_URL)"
    WORKER_AMQP_URL="$AMQP" PUBLISH_AMQP_URL="$AMQP"
    apply_topology "$AMQP"
    simulate 81 "${EVENTS:-4000}" --out-of-order 0.05 --duplicates 0.03
    # a fifth of the postings fail: their retry copies must be published while publishing is blocked
    start_erp --error-rate 0.2 --fault-seed 81 --latency-ms 2-6
    STORE_URL="sqlite:$SC/store.db"
    start_workers
    # 5 attempts at 20% failures: now and then one is retries-exhausted, for the replay worker
    start_worker replay replay-worker
    publish_file "$SC/events.jsonl"
    wait_more 300 180 >/dev/null
    local hold=45 t0 rc=0 took before after
    log_info "memory alarm for ${hold}s (consumer_timeout 20 s); SIGTERM of the inventory worker 30 s into it"
    "$BROKER" ctl "$SC/broker" set_vm_memory_high_watermark 0.000001 >>"$SC/brokers.log" 2>&1
    before="$(erp_documents_count)"
    sleep 30
    t0=$SECONDS
    kill -TERM "${WPID[inventory]}"
    timeout 60 tail --pid="${WPID[inventory]}" -f /dev/null || rc=timeout
    [ "$rc" = timeout ] || wait "${WPID[inventory]}" || rc=$?
    took=$((SECONDS - t0))
    [ "$rc" = timeout ] && kill -KILL "${WPID[inventory]}" 2>/dev/null
    sleep $((hold - 30 > took ? hold - 30 - took : 0))
    after="$(erp_documents_count)"
    "$BROKER" ctl "$SC/broker" set_vm_memory_high_watermark 0.4 >>"$SC/brokers.log" 2>&1
    log_info "SIGTERM during the alarm: exit $rc after ${took}s; $((after - before)) postings during the alarm"
    start_worker inventory inventory-worker
    wait_posted "$EXPECTED" "$SC/broker" 600 || true
    replayed_letters "$AMQP"
    local timeouts
    # (grep finds nothing when no delivery outlived consumer_timeout: that is a count of 0)
    timeouts="$({ grep -c 'acknowledgement.*timed out\|consumer_timeout\|PRECONDITION_FAILED' "$SC"/*.log 2>/dev/null || true; } | awk -F: '{s += $2} END {print s + 0}')"
    finish alarm "memory alarm (publishers blocked) for ${hold}s > consumer_timeout 20 s, ERP failing 20%: $((after - before)) postings meanwhile, $timeouts consumer-timeout lines in the logs; SIGTERM of inventory-worker 30 s into the alarm: exit $rc after ${took}s" \
        none "$([ "$rc" = 0 ] && [ "$took" -le 30 ] && echo 0 || echo 1)"
}

# ---- half-open TCP to the broker, a slow and trickling ERP ---------------------------------------
scenario_proxy() {
    single_broker
    local bport eport hb=5 ports
    mapfile -t ports < <(free_port 2)
    bport="${ports[0]}" eport="${ports[1]}"
    $PY "$REPO/scripts/lib/proof_proxy.py" --listen "$bport" --target "127.0.0.1:$(read_env "$SC/broker/broker.env" AMQP_PORT)" \
        --log "$SC/broker-proxy.log" >>"$SC/proxy.err" 2>&1 &
    local bproxy=$!
    STARTED+=("$bproxy python3")
    simulate 91 "${EVENTS:-5000}" --out-of-order 0.05 --duplicates 0.03
    start_erp
    $PY "$REPO/scripts/lib/proof_proxy.py" --listen "$eport" --target "${ERP_URL#http://}" --mode http-slow \
        --log "$SC/erp-proxy.log" >>"$SC/proxy.err" 2>&1 &
    local eproxy=$!
    STARTED+=("$eproxy python3")
    wait_for_tcp 127.0.0.1 "$bport" 20 && wait_for_tcp 127.0.0.1 "$eport" 20
    WORKER_AMQP_URL="amqp://guest:guest@127.0.0.1:$bport/?heartbeat=$hb"
    local erp_direct="$ERP_URL"
    ERP_URL="http://127.0.0.1:$eport"
    STORE_URL="sqlite:$SC/store.db"
    start_workers
    ERP_URL="$erp_direct"
    publish_file "$SC/events.jsonl"
    wait_more 300 180 >/dev/null

    # 1: the path to the broker goes silent (no FIN, no RST) for every connection open now
    local t_freeze detect accepts
    kill -USR1 "$bproxy"
    sleep 1
    t_freeze="$(awk '$2 == "freeze" {print $1}' "$SC/broker-proxy.log" | tail -n 1)"
    log_info "broker path frozen (half-open); heartbeat ${hb}s"
    local i
    for ((i = 0; i < 120; i++)); do
        awk -v t="$t_freeze" '$2 == "accept" && $1 > t {f = 1} END {exit !f}' "$SC/broker-proxy.log" && break
        sleep 0.5
    done
    detect="$(awk -v t="$t_freeze" '$2 == "accept" && $1 > t {printf "%.1f", $1 - t; exit}' "$SC/broker-proxy.log")"
    wait_more 200 120 >/dev/null
    accepts="$(awk -v t="$t_freeze" '$2 == "accept" && $1 > t {n++} END {print n + 0}' "$SC/broker-proxy.log")"
    log_info "a new connection ${detect:-never}s after the freeze ($accepts since)"

    # 2: the ERP answers every other request 12 s late and trickles the rest (a byte per 50 ms), 60 s long
    kill -USR1 "$eproxy"
    log_info "ERP slow for 60 s"
    sleep 60
    kill -USR2 "$eproxy"
    local late trickled
    late="$(grep -c ' late ' "$SC/erp-proxy.log" || true)"
    trickled="$(grep -c ' trickle ' "$SC/erp-proxy.log" || true)"
    wait_posted "$EXPECTED" "$SC/broker" 600 || true
    local ok=1
    [ -n "$detect" ] && awk -v d="$detect" -v h="$hb" 'BEGIN {exit !(d <= 2 * h)}' && ok=0
    finish proxy "TCP proxy to the broker frozen half-open (heartbeat ${hb}s): new connection after ${detect:-never} s (bar $((2 * hb)) s), $accepts reconnections; ERP behind a proxy for 60 s: $late answers 12 s late, $trickled trickled a byte per 50 ms" \
        none "$ok"
}

# ---- a backlog of 10^6 events, one key holding 10^4 --------------------------------------------
# backlog_run NAME STORE (sqlite | postgres): BACKLOG_EVENTS inventory events over BACKLOG_KEYS keys
# (scripts/lib/proof_backlog.py), BACKLOG_OUT_OF_ORDER of them in swapped pairs, one key's
# HELD_KEY_EVENTS published so that its sequence 1 comes last (its 2..N first: all held until the
# end of the backlog), all published while no worker runs; then one inventory-worker drains it.
# The row: the drain's time per event overall and per tenth of the postings (it must not grow),
# the worker's RSS (sampled every 2 s), the held key posted complete and in order.
backlog_run() {
    local name="$1" store="$2"
    local events="${BACKLOG_EVENTS:-1000000}" keys="${BACKLOG_KEYS:-100000}" held="${HELD_KEY_EVENTS:-10000}"
    local gap_timeout="${BACKLOG_GAP_TIMEOUT:-6h}" rss_limit="${BACKLOG_RSS_LIMIT_MIB:-400}" slice_limit="${BACKLOG_SLICE_LIMIT:-3}"
    single_broker
    local t=$SECONDS
    $PY "$REPO/scripts/lib/proof_backlog.py" generate --dir "$SC" --events "$events" --keys "$keys" --held "$held" \
        --out-of-order "${BACKLOG_OUT_OF_ORDER:-0.3}" --seed 17 >"$SC/generate.json"
    local displaced
    displaced="$(jq .displaced "$SC/generate.json")"
    log_info "generated $events events over $keys keys in $((SECONDS - t))s ($displaced in swapped pairs)"
    if [ "$store" = postgres ]; then
        PG_DIRS+=("$SC/pg")
        "$POSTGRES" start "$SC/pg" >>"$SC/postgres.log" 2>&1 || { tail -n 20 "$SC/postgres.log" >&2; return 1; }
        STORE_URL="$(read_env "$SC/pg/postgres.env" POSTGRES_URL)"
    else
        STORE_URL="sqlite:$SC/store.db"
    fi
    start_erp
    # the whole backlog first, no worker running: the held key's 2..N, the rest, its 1
    t=$SECONDS
    publish_file "$SC/held-first.jsonl"
    publish_file "$SC/events.jsonl"
    publish_file "$SC/held-last.jsonl"
    local publish_s=$((SECONDS - t)) depth=0 i
    for ((i = 0; i < 30; i++)); do
        depth="$(mgmt "$SC/broker" "/api/queues/%2F/erp.inventory" | jq '.messages // 0')" || depth=0
        [ "$depth" -lt "$events" ] || break
        sleep 2
    done
    log_info "published in ${publish_s}s; erp.inventory holds $depth messages"
    local start
    start="$(date +%s.%N)"
    start_worker inventory inventory-worker GAP_TIMEOUT="$gap_timeout"
    wait_ready_worker inventory 120 || { tail -n 30 "$SC/inventory.log" >&2; return 1; }
    local wpid="${WPID[inventory]}"
    (
        while :; do
            echo "$(date +%s.%N) $(awk '/VmRSS/ {print $2}' "/proc/$wpid/status" 2>/dev/null || echo 0)"
            sleep 2
        done
    ) >"$SC/samples.txt" 2>/dev/null &
    local sampler=$!
    wait_posted "$events" "$SC/broker" "${BACKLOG_LIMIT:-7200}" || true
    kill "$sampler" 2>/dev/null || true
    local bad parked
    parked="$(grep -c 'gap-timeout\|parked' "$SC/inventory.log" || true)"
    stop_workers
    bad="$STOP_BAD"
    t=$SECONDS
    audit --expected "$SC/expected.txt"
    log_info "audit of $A_BOOKED documents took $((SECONDS - t))s"
    $PY "$REPO/scripts/lib/proof_backlog.py" analyze --documents "$SC/documents.jsonl" --backlog "$SC/backlog.json" \
        --samples "$SC/samples.txt" --start "$start" >"$SC/backlog-analysis.json"
    local an="$SC/backlog-analysis.json" ok=0
    jq -e --argjson held "$held" --argjson rss "$rss_limit" --argjson slices "$slice_limit" \
        '.held.posted == $held and .held.inOrder and .rssMaxMiB < $rss and .sliceMaxOverMedian <= $slices' "$an" >/dev/null || ok=1
    [ -z "$bad" ] && [ "$A_BOOKED" = "$events" ] || ok=1
    local drain rate
    drain="$(jq .drainSeconds "$an")"
    rate="$(jq '(.postings / .drainSeconds) | floor' "$an")"
    row "$name" "$events ($keys keys)" \
        "backlog published with no worker running ($publish_s s; $depth messages queued), then one inventory-worker ($store store, GAP_TIMEOUT $gap_timeout); $displaced events ($((displaced * 100 / events)) %) in swapped pairs (published after their key's next sequence); $(jq -r .held.key "$an"): $held events, sequences 2..$held published first and 1 last. Drain: ${drain} s from the worker's start (first posting after $(jq .firstPostingAfterStart "$an") s), $(jq .usPerEvent "$an") µs/event ($rate/s); µs/event per tenth of the postings: $(jq -r '.sliceUsPerEvent | map(tostring) | join(" / ")' "$an") (max/median $(jq .sliceMaxOverMedian "$an"), bar $slice_limit); held key: $(jq .held.posted "$an") posted, in order: $(jq .held.inOrder "$an"), released in $(jq .held.releaseSeconds "$an") s; worker RSS max $(jq .rssMaxMiB "$an") MiB (first half $(jq .rssFirstHalfMaxMiB "$an"), second half $(jq .rssSecondHalfMaxMiB "$an"); bar $rss_limit), $(jq .rssSamples "$an") samples; $parked gap-timeout/parked lines in the log${bad:+; graceful stop: $bad}" \
        "$A_LOST" "$A_TWICE" "$(order_cell)" "$A_STALL" "none" "$(verdict "$ok")"
}
scenario_backlog() { backlog_run backlog sqlite; }
scenario_backlog_postgres() { backlog_run backlog-postgres postgres; }
