#!/usr/bin/env bash
# Every `ociman` subcommand against a running ocimand (OCIMAN_HOST, token in OCIMAN_TOKEN_FILE),
# then `exec -it ... psql` and `run --rm -it ... sh` in a real terminal (tmux).
#
# Usage: cli_test.sh OCIMAN_BINARY LABEL_KEY LABEL_VALUE [CASE...]
#
# Everything it creates carries LABEL_KEY=LABEL_VALUE or is an image named
# localhost/ociman-cli-test*:LABEL_VALUE* (the calling suite removes both, whatever happens here).
# The build context goes under /tmp, which ocimand must have as a --context-root.
# Prints "ok   CASE" or "FAIL CASE: why" per case; exits 1 when any failed.
set -uo pipefail

O=$1 LABEL_KEY=$2 RUN=$3
shift 3
LABEL="$LABEL_KEY=$RUN"
IMAGE=localhost/busybox:test
PG_IMAGE=localhost/ociman-postgres:15
TEST_REPO=localhost/ociman-cli-test
REGISTRY=127.0.0.1:5000
TOKEN=$(cat "$OCIMAN_TOKEN_FILE")
WORK=$(mktemp -d /tmp/ociman-cli-test.XXXXXX)
# Cases run in subshells: their tmux sessions are found by name.
trap 'rm -rf "$WORK"; for s in $(tmux ls -F "#S" 2>/dev/null); do [[ $s == ociman-$RUN-* ]] && tmux kill-session -t "$s"; done' EXIT
FAILED=0

ociman() { "$O" --token-file "$OCIMAN_TOKEN_FILE" "$@"; }
fail() { echo "$*" >&2; return 1; }
expect_eq() { [ "$1" = "$2" ] || fail "expected [$2], got [$1]"; }
expect_has() { case "$1" in *"$2"*) ;; *) fail "[$2] not in: $1" ;; esac; }
run_case() {
    local name=$1 out
    if out=$("case_$name" 2>&1); then echo "ok   $name"; else echo "FAIL $name: ${out//$'\n'/ | }"; FAILED=1; fi
}
started() { ociman run -d -l "$LABEL" "$@"; }

case_backend() {
    expect_has "$(ociman backend)" "$OCIMAN_ENGINE" &&
        expect_eq "$(ociman backend --json | jq -r .kind)" "$OCIMAN_ENGINE"
}

case_run_detached_ps_inspect() {
    local id
    id=$(started --name "cli-$RUN-ps" -e A=1 -w /tmp -u 0 "$IMAGE" sleep 600) || return 1
    expect_has "$(ociman ps -l "$LABEL")" "cli-$RUN-ps" &&
        expect_eq "$(ociman ps --json -l "$LABEL" --name "cli-$RUN-ps" | jq -r '.[0].id')" "$id" &&
        expect_eq "$(ociman inspect "cli-$RUN-ps" | jq -r '.state.running')" true &&
        expect_eq "$(ociman exec "$id" sh -c 'echo $A $(pwd) $(id -u)')" "1 /tmp 0"
}

case_run_foreground_status() {
    local out status
    out=$(ociman run --rm -l "$LABEL" "$IMAGE" sh -c 'echo to-out; echo to-err >&2; exit 7' 2>"$WORK/err")
    status=$?
    expect_eq "$status" 7 && expect_eq "$out" to-out && expect_eq "$(cat "$WORK/err")" to-err
}

case_run_publish_mount_entrypoint() {
    mkdir -p "$WORK/mount" && echo mounted >"$WORK/mount/file"
    local out
    out=$(ociman run --rm -l "$LABEL" -p 127.0.0.1::8080 -v "$WORK/mount:/data:ro" --entrypoint cat "$IMAGE" /data/file)
    expect_eq "$out" mounted
}

case_exec_status_env_stdin() {
    local id out status
    id=$(started "$IMAGE" sleep 600) || return 1
    ociman exec -e B=2 "$id" sh -c 'echo $B; exit 3' >"$WORK/exec"
    status=$?
    expect_eq "$status" 3 && expect_eq "$(cat "$WORK/exec")" 2 || return 1
    head -c 1000000 /dev/urandom >"$WORK/random"
    ociman exec -i "$id" cat <"$WORK/random" >"$WORK/random.back" &&
        cmp "$WORK/random" "$WORK/random.back"
}

case_logs_tail_follow() {
    local id
    id=$(started "$IMAGE" sh -c 'echo l1; echo l2; sleep 1; echo late') || return 1
    expect_eq "$(timeout 20 "$O" --token-file "$OCIMAN_TOKEN_FILE" logs -f "$id" | tail -n 1)" late &&
        expect_eq "$(ociman logs --tail 1 "$id")" late &&
        expect_eq "$(ociman logs "$id" | head -n 1)" l1
}

case_stop_kill_wait_rm() {
    local a b
    a=$(started "$IMAGE" sleep 600) && b=$(started "$IMAGE" sleep 600) || return 1
    ociman stop -t 1 "$a" >/dev/null && ociman kill -s KILL "$b" >/dev/null || return 1
    expect_eq "$(ociman wait "$b")" 137 &&
        expect_eq "$(ociman inspect "$a" | jq -r .state.running)" false &&
        ociman rm "$a" >/dev/null && ! ociman inspect "$a" >/dev/null 2>&1 || return 1
    local c
    c=$(started "$IMAGE" sleep 600) || return 1
    ociman rm "$c" >/dev/null 2>&1 && return 1   # running: refused without -f
    ociman rm -f "$c" >/dev/null && [ -z "$(ociman ps -l "$LABEL" --json | jq -r --arg c "$c" '.[] | select(.id == $c) | .id')" ]
}

case_commit_tag_images_rmi() {
    local id
    id=$(started "$IMAGE" sh -c 'echo committed > /marker; sleep 600') || return 1
    sleep 1
    ociman commit -c 'ENV FROM_COMMIT=yes' "$id" "$TEST_REPO:$RUN-c" >/dev/null &&
        ociman tag "$TEST_REPO:$RUN-c" "$TEST_REPO:$RUN-t" &&
        expect_has "$(ociman images)" "$TEST_REPO:$RUN-t" &&
        expect_eq "$(ociman images --json | jq -r --arg r "$TEST_REPO:$RUN-c" '[.[] | select(.references | index($r))] | length')" 1 &&
        expect_eq "$(ociman run --rm -l "$LABEL" "$TEST_REPO:$RUN-t" sh -c 'cat /marker; echo $FROM_COMMIT')" $'committed\nyes' &&
        ociman rmi "$TEST_REPO:$RUN-t" "$TEST_REPO:$RUN-c" >/dev/null &&
        [[ $(ociman images) != *"$TEST_REPO:$RUN-c"* ]]
}

case_build_hash() {
    mkdir -p "$WORK/context"
    printf 'FROM %s\nARG WORD=none\nRUN echo "$WORD" > /word\n' "$IMAGE" >"$WORK/context/Containerfile"
    local built cached hashed
    built=$(ociman build -f Containerfile --build-arg WORD=hello --label role=cli -t "$TEST_REPO:$RUN-b" "$WORK/context") || return 1
    expect_eq "$(echo "$built" | tail -n 1)" "$TEST_REPO:$RUN-b" &&
        expect_eq "$(ociman run --rm -l "$LABEL" "$TEST_REPO:$RUN-b" cat /word)" hello || return 1
    built=$(ociman build --json -f Containerfile --build-arg WORD=hash --name "$TEST_REPO-ca" "$WORK/context" | jq -r .reference)
    hashed=$(ociman hash -f Containerfile --build-arg WORD=hash --name "$TEST_REPO-ca" "$WORK/context")
    cached=$(ociman build --json --if-absent -f Containerfile --build-arg WORD=hash --name "$TEST_REPO-ca" "$WORK/context" | jq -r .cached)
    expect_eq "$hashed" "$built" && expect_eq "$cached" true &&
        ociman rmi "$TEST_REPO:$RUN-b" "$built" >/dev/null
}

case_pull_push() {
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY/v2/")" != 200 ]; then
        # No registry on this machine: the refusal is reported, with docker's status for it.
        local status
        ociman pull "$REGISTRY/none/such:$RUN" >/dev/null 2>"$WORK/pull.err"
        status=$?
        expect_eq "$status" 125 && [ -s "$WORK/pull.err" ] || return 1
        ociman push "$REGISTRY/none/such:$RUN" >/dev/null 2>&1
        expect_eq "$?" 125
        return
    fi
    local reference="$REGISTRY/ociman-cli-test:$RUN"
    ociman tag "$IMAGE" "$reference" && ociman push "$reference" >"$WORK/push" &&
        ociman rmi "$reference" >/dev/null && ociman pull "$reference" >"$WORK/pull" &&
        expect_has "$(ociman images)" "$reference" && ociman rmi "$reference" >/dev/null
}

case_session() {
    local session id
    session=$(ociman session create --lease 60) || return 1
    expect_has "$(ociman session renew --lease 120 "$session")" "T" || return 1
    id=$(ociman run -d -l "$LABEL" --session "$session" "$IMAGE" sleep 600) || return 1
    expect_eq "$(ociman session rm "$session")" "removed 1 containers" &&
        ! ociman inspect "$id" >/dev/null 2>&1
}

case_attach_piped() {
    local id out status
    id=$(started -i -t "$IMAGE" sh) || return 1
    # The attach replays what the shell printed before it, then streams: input typed during the
    # replay may have its echo missed, as a person typing would not.
    out=$( (sleep 1; printf 'echo hi-$((1+2))\nexit 5\n') | ociman attach "$id")
    status=$?
    expect_eq "$status" 5 && expect_has "$out" "hi-3"
}

case_token_and_host() {
    local status
    "$O" backend >/dev/null 2>"$WORK/err"
    status=$?
    expect_eq "$status" 125 && expect_has "$(cat "$WORK/err")" "401" || return 1
    expect_has "$(OCIMAN_TOKEN=$TOKEN "$O" backend)" "$OCIMAN_ENGINE" &&
        expect_has "$("$O" --host "$OCIMAN_HOST" --token-file "$OCIMAN_TOKEN_FILE" backend)" "$OCIMAN_ENGINE" || return 1
    "$O" --host "ftp://nowhere" backend >/dev/null 2>&1
    expect_eq "$?" 125
}

case_completion() {
    expect_has "$("$O" --generate-completion-script bash)" "_ociman" &&
        expect_has "$("$O" --generate-completion-script zsh)" "#compdef ociman" &&
        expect_has "$("$O" --generate-completion-script fish)" "ociman"
}

# ---- in a real terminal: tmux, 120x40

pane() { tmux capture-pane -p -J -t "$1" -S -200; }
wait_pane() {   # wait_pane SESSION TEXT [SECONDS]
    local deadline=$((SECONDS + ${3:-20}))
    until [[ $(pane "$1") == *"$2"* ]]; do
        [ $SECONDS -lt $deadline ] || { fail "[$2] did not appear in the terminal:"; pane "$1" >&2; return 1; }
        sleep 0.2
    done
}
# Literal text, then Enter; tmux reads an argument's trailing ";" as its own separator, "\;" as ";".
type_line() {
    local text=$2
    [[ $text == *";" ]] && text="${text%;}\;"
    tmux send-keys -t "$1" -l "$text" && tmux send-keys -t "$1" Enter
}
terminal() {   # terminal NAME COMMAND...: runs it in a new 120x40 tmux session, then prints EXIT=status
    local session="ociman-$RUN-$1"
    shift
    tmux new-session -d -s "$session" -x 120 -y 40 \
        "OCIMAN_HOST=$OCIMAN_HOST $(printf '%q ' "$O" --token-file "$OCIMAN_TOKEN_FILE" "$@"); echo EXIT=\$?; sleep 600"
    echo "$session"
}

case_exec_it_psql() {
    local pg session deadline
    pg=$(started "$PG_IMAGE") || return 1
    deadline=$((SECONDS + 60))
    until [[ $(ociman logs "$pg" 2>&1) == *"database system is ready to accept connections"* ]]; do
        [ $SECONDS -lt $deadline ] || fail "PostgreSQL did not get ready" || return 1
        sleep 0.3
    done
    session=$(terminal psql exec -it "$pg" psql -U postgres) || return 1
    wait_pane "$session" "postgres=#" || return 1
    type_line "$session" "SELECT 6 * 7 AS answer, current_user;"
    wait_pane "$session" "(1 row)" && expect_has "$(pane "$session")" "42 | postgres" || return 1
    type_line "$session" '\q'
    wait_pane "$session" "EXIT=0"
}

case_run_rm_it_sh() {
    local session name="cli-$RUN-it"
    session=$(terminal sh run --rm -it -l "$LABEL" --name "$name" "$IMAGE" sh) || return 1
    wait_pane "$session" "# " || return 1
    type_line "$session" 'stty size; echo typed-$((3*3))'
    wait_pane "$session" "typed-9" && wait_pane "$session" "40 120" || return 1
    # SIGWINCH: the new size reaches the container's terminal.
    tmux resize-window -t "$session" -x 100 -y 30
    sleep 0.5
    type_line "$session" 'stty size'
    wait_pane "$session" "30 100" || return 1
    # Ctrl-C goes to the container's foreground process, not to ociman.
    type_line "$session" 'sleep 100; echo not-$((1+1))-interrupted'
    sleep 1
    tmux send-keys -t "$session" C-c
    type_line "$session" 'echo after-$((5+5))'
    wait_pane "$session" "after-10" || return 1
    type_line "$session" 'exit 6'
    wait_pane "$session" "EXIT=6" || return 1
    local deadline=$((SECONDS + 15))
    while ociman inspect "$name" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || fail "--rm left the container" || return 1
        sleep 0.3
    done
    [[ $(pane "$session") != *not-2-interrupted* ]]
}

CASES=(backend run_detached_ps_inspect run_foreground_status run_publish_mount_entrypoint exec_status_env_stdin
    logs_tail_follow stop_kill_wait_rm commit_tag_images_rmi build_hash pull_push session attach_piped
    token_and_host completion exec_it_psql run_rm_it_sh)
for name in "${@:-${CASES[@]}}"; do run_case "$name"; done
exit $FAILED
