# Shared shell helpers for scripts/*  (source it; bash only).
#   start_bg NAME LOGFILE CMD...   start CMD in its own process group, remember its pid
#                                  (LOGFILE - : output goes to ours)
#   stop_all                       stop everything start_bg started (TERM, then KILL), newest first
#   stop_bg NAME                   stop what start_bg started under NAME
#   wait_for SECONDS WHAT CMD...   retry CMD until it succeeds (or fail with WHAT)
#   say / step / warn / die        output

SB_PIDS=()      # pids (= process group ids) of what start_bg started
SB_NAMES=()
SB_LOGS=()

if [ -t 1 ]; then
    C_BOLD=$'\e[1m' C_GREEN=$'\e[32m' C_RED=$'\e[31m' C_YELLOW=$'\e[33m' C_OFF=$'\e[0m'
else
    C_BOLD='' C_GREEN='' C_RED='' C_YELLOW='' C_OFF=''
fi

say()  { printf '%s\n' "$*"; }
step() { printf '\n%s==> %s%s\n' "$C_BOLD" "$*" "$C_OFF"; }
ok()   { printf '  %sOK%s   %s\n' "$C_GREEN" "$C_OFF" "$*"; }
bad()  { printf '  %sFAIL%s %s\n' "$C_RED" "$C_OFF" "$*"; }
warn() { printf '%swarning:%s %s\n' "$C_YELLOW" "$C_OFF" "$*" >&2; }
die()  { printf '%serror:%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; exit 1; }

# start_bg NAME LOGFILE CMD... : CMD runs in a new session (setsid), so stop_all
# can signal its whole process group (e.g. Kamailio and its children) by id.
start_bg() {
    local name=$1 logfile=$2; shift 2
    if [ "$logfile" = - ]; then       # output to ours (e.g. a live tail)
        setsid "$@" </dev/null &
    else
        setsid "$@" >"$logfile" 2>&1 </dev/null &
    fi
    SB_PIDS+=("$!"); SB_NAMES+=("$name"); SB_LOGS+=("$logfile")
}

# pid of the process start_bg started under NAME
pid_of() {
    local i
    for i in "${!SB_NAMES[@]}"; do
        [ "${SB_NAMES[$i]}" = "$1" ] && { echo "${SB_PIDS[$i]}"; return 0; }
    done
    return 1
}

running() { local pid; pid=$(pid_of "$1") && kill -0 "$pid" 2>/dev/null; }

# stop_bg NAME : stop what start_bg started under NAME (TERM to its process group, KILL after 5 s)
stop_bg() {
    local pid n
    pid=$(pid_of "$1") || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((n=0; n<50; n++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local i pid n
    for ((i=${#SB_PIDS[@]}-1; i>=0; i--)); do
        pid=${SB_PIDS[$i]}
        kill -0 "$pid" 2>/dev/null || continue
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for ((n=0; n<50; n++)); do          # up to 5 s for a clean exit
        local alive=0
        for pid in "${SB_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${SB_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    done
    for pid in "${SB_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    SB_PIDS=(); SB_NAMES=(); SB_LOGS=()
}

# last lines of the log of NAME
log_tail() {
    local i
    for i in "${!SB_NAMES[@]}"; do
        if [ "${SB_NAMES[$i]}" = "$1" ]; then
            echo "--- ${SB_LOGS[$i]} (last ${2:-25} lines)"; tail -n "${2:-25}" "${SB_LOGS[$i]}"
        fi
    done
}

wait_for() {
    local seconds=$1 what=$2; shift 2
    local deadline=$((SECONDS + seconds))
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.2
    done
    return 0
}
