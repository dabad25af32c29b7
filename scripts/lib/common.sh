# shellcheck shell=bash
# Shared helpers for scripts/, .ci/ and bench/. Source it; it does not change shell options.

# ---- logging ---------------------------------------------------------------
# All log output goes to stderr so that stdout stays usable for data.
_whsync_log_prefix() { printf '[%s %s]' "$(date '+%H:%M:%S')" "${WHSYNC_LOG_TAG:-${0##*/}}"; }
log_info()  { printf '%s %s\n'        "$(_whsync_log_prefix)" "$*" >&2; }
log_warn()  { printf '%s WARNING: %s\n' "$(_whsync_log_prefix)" "$*" >&2; }
log_error() { printf '%s ERROR: %s\n'   "$(_whsync_log_prefix)" "$*" >&2; }
die()       { log_error "$*"; exit 1; }

# ---- apt packages ----------------------------------------------------------
# ensure_apt_packages PKG...
# Installs the packages that are not installed yet. Runs `apt-get update` once (per
# process tree, only when something is missing), never prompts, keeps apt quiet but lets
# its errors through.
_whsync_pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]
}

ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        _whsync_pkg_installed "$pkg" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get to install them"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}); run as root or install sudo"
        sudo=(sudo -n)
    fi
    log_info "installing missing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${WHSYNC_APT_UPDATED:-}" ]; then
        "${sudo[@]}" apt-get update -qq </dev/null >/dev/null \
            || die "apt-get update failed"
        export WHSYNC_APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null >/dev/null \
        || die "apt-get install ${missing[*]} failed"
    for pkg in "${missing[@]}"; do
        _whsync_pkg_installed "$pkg" || die "package $pkg still not installed after apt-get install"
    done
}

# ---- ports -----------------------------------------------------------------
# free_port [N]: prints N (default 1) distinct TCP ports that are free on 127.0.0.1 right
# now, one per line. They lie below the kernel's ephemeral range (ip_local_port_range), so that no
# outgoing connection (rabbitmqctl, epmd, a test client) can take one between now and the moment
# its server binds it; port 0 would hand out ports from that very range. (All N sockets are held
# open together so they are distinct.)
free_port() {
    local n="${1:-1}" low=32768
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$n" "$low" <<'PY' && return 0
import random, socket, sys
n, low = int(sys.argv[1]), int(sys.argv[2])
first = 10000 if low > 12000 else 1024
socks = []
for port in random.sample(range(first, low), low - first):
    if len(socks) == n:
        break
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
if len(socks) < n:
    sys.exit(1)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
PY
    fi
    # Without python: random ports below the ephemeral range, checked against /proc/net/tcp{,6}
    # listeners.
    local used picked=() port i tries
    local _sl addr _rest
    used="$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | while read -r _sl addr _rest; do
        [[ "$addr" == *:* ]] && echo $((16#${addr##*:})); done | sort -u)"
    for ((i = 0; i < n; i++)); do
        for ((tries = 0; tries < 1000; tries++)); do
            port=$((20000 + RANDOM % (low > 20000 ? low - 20000 : 12000)))
            if ! grep -qx "$port" <<<"$used" && [[ " ${picked[*]} " != *" $port "* ]] \
                && ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                picked+=("$port")
                break
            fi
        done
        [ "$tries" -lt 1000 ] || die "could not find a free port"
    done
    printf '%s\n' "${picked[@]}"
}

# wait_for_tcp HOST PORT TIMEOUT_SECONDS: succeeds once HOST:PORT accepts a connection.
wait_for_tcp() {
    local host="$1" port="$2" timeout="${3:-30}" deadline
    deadline=$((SECONDS + timeout))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# pid_alive PID [COMM]: PID exists (and, if given, its /proc/PID/comm equals COMM).
# The comm check keeps a recycled PID from being mistaken for ours.
pid_alive() {
    local pid="$1" comm="${2:-}"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    # a zombie is not alive
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] || return 1
    [ -z "$comm" ] && return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

# repo_root: absolute path of the repository (this file lives in scripts/lib/).
repo_root() {
    (cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
}

# with_default_signals CMD...: exec CMD with every signal unblocked and at its default
# disposition. A daemon started from a process that ignores or blocks SIGTERM (a test runner,
# say) would otherwise inherit that and shrug off a polite stop. perl-base is Essential on
# Debian, so perl is always there.
# It also closes every inherited descriptor above stderr: a daemon holding its caller's pipe (or
# Foundation's process-monitoring socket) open keeps that caller waiting for an EOF forever.
WHSYNC_DEFAULT_SIGNALS_PERL='use POSIX (); POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new());
    POSIX::close($_) for 3 .. 1023;
    for my $s (qw(HUP INT QUIT TERM PIPE USR1 USR2 ALRM CHLD TSTP TTIN TTOU)) { $SIG{$s} = "DEFAULT" }
    exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n";'
with_default_signals() {
    perl -e "$WHSYNC_DEFAULT_SIGNALS_PERL" "$@"
}
