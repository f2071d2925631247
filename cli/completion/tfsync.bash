# cli/completion/tfsync.bash — bash completion for tfsync, the command-line client of
# tfsyncd: the commands, each command's options and fixed words (full|incremental,
# list|replay|discard, ...), and pair names asked of the daemon (tfsync pairs, with the
# --url and --key already on the line) when it answers; quietly nothing when it does not.
# Installed where bash-completion looks (share/bash-completion/completions/tfsync), or:
#   source cli/completion/tfsync.bash

_tfsync_commands="sync run status pairs plugins validate audit dead-letters conflicts cancel confirm transform health"
_tfsync_globals="--url --key --json --help --version"

# Pair names from the daemon; the line's --url and --key are passed on.
_tfsync_pairs()
{
    local -a args=()
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --url | --key)
            ((i + 1 < COMP_CWORD)) && args+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}")
            ((i++))
            ;;
        --url=* | --key=*) args+=("${COMP_WORDS[i]}") ;;
        esac
    done
    local bin=${COMP_WORDS[0]}
    command -v "$bin" >/dev/null 2>&1 || bin=tfsync
    # A pair's line is "NAME: SOURCE -> TARGET, ..."; its details are indented.
    timeout 5 "$bin" "${args[@]}" pairs 2>/dev/null | sed -n 's/^\([^ :][^ :]*\): .*/\1/p'
}

# The options of a command (and the global ones).
_tfsync_options()
{
    local o
    case $1 in
    sync | run) o="--wait --timeout" ;;
    validate) o="--sample" ;;
    audit) o="--pair --entity --record --run --since --until --after-id --limit --all" ;;
    dead-letters) o="--pair --entity --run --stage --status --limit --after" ;;
    conflicts) o="--pair --status --entity --limit --after --record" ;;
    transform) o="--pair --entity --source" ;;
    esac
    echo "$o --url --key --json --help"
}

_tfsync()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=""
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()

    # The command, its first word (a sub-command), and how many words it has had.
    local cmd="" sub="" npos=0 i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        --url | --key | --pair | --entity | --run | --since | --until | --after-id | --limit | \
            --after | --stage | --status | --sample | --timeout | --source)
            ((i++))
            continue
            ;;
        --record)
            # audit's record key or conflicts resolve's file: a value either way
            ((i++))
            continue
            ;;
        -*) continue ;;
        esac
        if [[ -z $cmd ]]; then
            cmd=$w
        else
            [[ -z $sub ]] && sub=$w
            ((npos++))
        fi
    done

    # The value of an option.
    case $prev in
    --url | --key | --run | --since | --until | --after-id | --limit | --after | --sample | \
        --timeout | --entity)
        return 0
        ;;
    --pair)
        mapfile -t COMPREPLY < <(compgen -W "$(_tfsync_pairs)" -- "$cur")
        return 0
        ;;
    --stage)
        mapfile -t COMPREPLY < <(compgen -W "read transform validate conflict write" -- "$cur")
        return 0
        ;;
    --status)
        if [[ $cmd == conflicts ]]; then
            mapfile -t COMPREPLY < <(compgen -W "open resolved superseded" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "open replayed resolved discarded superseded all" -- "$cur")
        fi
        return 0
        ;;
    --source)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    --record)
        [[ $cmd == conflicts ]] && mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$_tfsync_globals" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$_tfsync_commands" -- "$cur")
        fi
        return 0
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_tfsync_options "$cmd")" -- "$cur")
        return 0
    fi

    local words=""
    case $cmd in
    sync | run)
        case $npos in
        0) words="full incremental" ;;
        1) words=$(_tfsync_pairs) ;;
        esac
        ;;
    validate) ((npos == 0)) && words=$(_tfsync_pairs) ;;
    audit) ((npos == 0)) && words="verify" ;;
    dead-letters) ((npos == 0)) && words="list replay discard" ;;
    conflicts)
        ((npos == 0)) && words="list show resolve"
        [[ $sub == resolve && $npos == 2 ]] && words="source target"
        ;;
    transform)
        if ((npos == 0)); then
            words="test"
        elif ((npos >= 2)); then
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return 0
        fi
        ;;
    esac
    [[ -n $words ]] && mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    return 0
}

complete -F _tfsync tfsync
