# Helpers shared by the bench scripts (sourced after scripts/lib/common.sh): medians, CPU
# profiles from /proc, stopping what a script started.
# shellcheck shell=bash

median() { # median of the arguments that are numbers ("?" when none is)
    printf '%s\n' "$@" | { grep -E '^-?[0-9]+([.][0-9]*)?([eE][-+]?[0-9]+)?$' || true; } | sort -g \
        | awk '{a[NR]=$1} END {if (NR==0) print "?"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# erp_documents URL [TYPE]: the reference ERP's documents (GET /stats), of TYPE or of all types;
# empty when it does not answer. Asked and parsed in bash (/dev/tcp, no curl, no jq): the wait
# loops poll it several times a second, and a curl and a jq per poll (30 ms of CPU) took 6% of
# these two cores from the processes measured.
erp_documents() {
    local stats counts total=0 hostport
    hostport="${1#http://}"
    hostport="${hostport%%/*}"
    stats="$(
        exec 2>/dev/null
        exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || exit 1
        printf 'GET /stats HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$hostport" >&3
        IFS= read -r -d '' -t 5 response <&3
        [[ "$response" == "HTTP/1."?" 200"* ]] || exit 1
        printf '%s' "$response"
    )" || return 0
    [[ "$stats" =~ \"documents\"[[:space:]]*:[[:space:]]*\{([^}]*)\} ]] || return 0
    counts="${BASH_REMATCH[1]}"
    if [ -n "${2:-}" ]; then
        [[ "$counts" =~ \"$2\"[[:space:]]*:[[:space:]]*([0-9]+) ]] && echo "${BASH_REMATCH[1]}" || echo 0
        return 0
    fi
    while [[ "$counts" =~ :[[:space:]]*([0-9]+)(.*)$ ]]; do
        total=$((total + BASH_REMATCH[1]))
        counts="${BASH_REMATCH[2]}"
    done
    echo "$total"
}

machine_ticks() { awk '/^cpu /{busy=$2+$3+$4+$7+$8; total=busy+$5+$6; print busy, total}' /proc/stat; }

# CPU per thread: lines "PID TID COMM TICKS RUNQ_NS" for each PID given (COMM without spaces):
# utime+stime in clock ticks (stat), and the time spent runnable but waiting for a CPU (schedstat)
cpu_snapshot() {
    perl -e '
        for my $pid (@ARGV) {
            for my $stat (glob "/proc/$pid/task/*/stat") {
                open(my $fh, "<", $stat) or next; my $line = <$fh>; close $fh; defined $line or next;
                my ($tid, $comm, $rest) = $line =~ /^(\d+) \((.*)\) (.*)$/s or next;
                my @f = split / /, $rest;   # $f[0] is field 3 (state); utime, stime are fields 14, 15
                $comm =~ s/\s+/_/g;
                my $runq = 0;
                if (open(my $sh, "<", "/proc/$pid/task/$tid/schedstat")) { my @s = split / /, <$sh> // ""; $runq = $s[1] // 0; close $sh }
                print "$pid $tid $comm ", $f[11] + $f[12], " $runq\n";
            }
        }' "$@"
}

# tree_ticks PID: CPU clock ticks (utime+stime) of process PID, of its live children, and of the
# children it has reaped (cutime+cstime): a PostgreSQL postmaster with its backends, as one number
tree_ticks() {
    perl -e '
        my $root = $ARGV[0]; my $ticks = 0;
        for my $stat (glob "/proc/[0-9]*/stat") {
            open(my $fh, "<", $stat) or next; my $line = <$fh>; close $fh; defined $line or next;
            my ($pid, $rest) = $line =~ /^(\d+) \(.*\) (.*)$/s or next;
            my @f = split / /, $rest;  # $f[1] is field 4 (ppid); utime, stime, cutime, cstime: fields 14-17
            if ($pid == $root) { $ticks += $f[11] + $f[12] + $f[13] + $f[14] }
            elsif ($f[1] == $root) { $ticks += $f[11] + $f[12] }
        }
        print "$ticks\n";' "$1"
}

# cpu_report BEFORE AFTER SECONDS EVENTS MBEFORE MAFTER LABEL=PID...: the machine's busy share,
# then per process its % of one core, the share of its time spent runnable but waiting for a CPU
# and (EVENTS > 0) its CPU ms per 1000 events; then its busiest thread groups (threads of one
# name summed; several of one name: each listed, busiest first)
cpu_report() {
    local before="$1" after="$2" secs="$3" events="$4" mb="$5" ma="$6"
    shift 6
    local hz
    hz="$(getconf CLK_TCK)"
    awk -v hz="$hz" -v secs="$secs" -v events="$events" -v mb="$mb" -v ma="$ma" -v labels="$*" '
        BEGIN { n = split(labels, l, " "); for (i = 1; i <= n; i++) { split(l[i], kv, "="); name[kv[2]] = kv[1]; order[i] = kv[2] } }
        FNR == NR { b[$2] = $4; bq[$2] = $5; next }
        { d = $4 - ($2 in b ? b[$2] : 0); if (d < 0) d = 0
          q = $5 - ($2 in bq ? bq[$2] : 0); if (q < 0) q = 0
          totq[$1] += q; grpq[$1 SUBSEP $3] += q
          tot[$1] += d; grp[$1 SUBSEP $3] += d; cnt[$1 SUBSEP $3]++
          each[$1 SUBSEP $3] = each[$1 SUBSEP $3] " " d }
        END {
            split(mb, m0, " "); split(ma, m1, " ")
            printf "  machine: %.0f%% of %d cores busy (all processes)\n", 100 * (m1[1] - m0[1]) / (m1[2] - m0[2]), '"$(nproc)"'
            for (i = 1; i <= n; i++) {
                p = order[i]
                per = events > 0 ? sprintf(", %.2f ms CPU per 1000 events", 1000 * 1000 * tot[p] / hz / events) : ""
                printf "  %-14s %6.1f%% of a core            (runnable, waiting for a CPU: %.1f%%)%s\n", name[p], 100 * tot[p] / hz / secs, 100 * totq[p] / 1e9 / secs, per
                k = 0
                for (g in grp) { split(g, pg, SUBSEP); if (pg[1] == p && grp[g] > 0) { rows[++k] = sprintf("%012d %s", grp[g], pg[2]) } }
                # sort descending by ticks (simple insertion sort, few rows)
                for (a = 2; a <= k; a++) { v = rows[a]; c = a - 1; while (c > 0 && rows[c] < v) { rows[c + 1] = rows[c]; c-- } rows[c + 1] = v }
                for (a = 1; a <= k && a <= 8; a++) {
                    split(rows[a], r, " "); t = r[1] + 0
                    # several threads of one name: the share of each, busiest first
                    detail = ""
                    if (cnt[p SUBSEP r[2]] > 1) {
                        m = split(substr(each[p SUBSEP r[2]], 2), e, " ")
                        for (x = 2; x <= m; x++) { v = e[x] + 0; y = x - 1; while (y > 0 && e[y] + 0 < v) { e[y + 1] = e[y]; y-- } e[y + 1] = v }
                        for (x = 1; x <= m; x++) detail = detail (x > 1 ? " + " : "(") sprintf("%.1f", 100 * e[x] / hz / secs)
                        detail = detail ")"
                    }
                    printf "      %-24s x%-3d %6.1f%%  wait-for-CPU %5.1f%%  %s\n", r[2], cnt[p SUBSEP r[2]], 100 * t / hz / secs, 100 * grpq[p SUBSEP r[2]] / 1e9 / secs, detail
                }
                delete rows
            }
        }' "$before" "$after"
}

# shellcheck disable=SC2034 # STOP_RC is the callers'
stop_pid() { # stop_pid PID COMM WHAT: SIGTERM, wait up to 30 s, SIGKILL; exit status in STOP_RC
    local pid="$1" comm="$2" what="$3" i
    STOP_RC=0
    if pid_alive "$pid" "$comm"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            pid_alive "$pid" "$comm" || break
            sleep 0.1
        done
        if pid_alive "$pid" "$comm"; then
            log_warn "$what (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || STOP_RC=$?
}
