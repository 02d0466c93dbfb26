# bash completion for tsagent(1)                             -*- shell-script -*-
# Install: copy to /usr/share/bash-completion/completions/tsagent
# (or ~/.local/share/bash-completion/completions/tsagent), or source it from ~/.bashrc.

_tsagent_vault() {
    # $1: index of the word after "vault"
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local subs="init import generate list export-pub remove rename set passwd verify help"
    local kdf="--kdf-memory --kdf-time --kdf-parallelism"
    local i sub=
    for ((i = $1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --vault | --passphrase-fd) ((i++)) ;;
        -*) ;;
        *) sub=${COMP_WORDS[i]} && break ;;
        esac
    done
    case $prev in
    --vault | --sk-provider)
        compgen -f -- "$cur"
        return
        ;;
    --passphrase-fd | --kdf-memory | --kdf-time | --kdf-parallelism | --lifetime | --allow | --confirm-window | -C | --comment)
        return
        ;;
    -t | --type)
        [[ $sub == generate ]] && compgen -W "ed25519 ecdsa rsa mldsa44-ed25519" -- "$cur"
        return
        ;;
    -b | --bits)
        [[ $sub == generate ]] && compgen -W "256 384 521 2048 3072 4096" -- "$cur"
        return
        ;;
    esac
    case $sub in
    '')
        if [[ $cur == -* ]]; then
            compgen -W "--vault --passphrase-fd -h --help" -- "$cur"
        else
            compgen -W "$subs" -- "$cur"
        fi
        ;;
    init | passwd) compgen -W "$kdf -h --help" -- "$cur" ;;
    import)
        if [[ $cur == -* ]]; then
            compgen -W "--confirm --lifetime --sk-provider -h --help" -- "$cur"
        else
            compgen -f -- "$cur"
        fi
        ;;
    generate) compgen -W "-t --type -b --bits -C --comment --confirm --lifetime -h --help" -- "$cur" ;;
    set) compgen -W "--confirm --no-confirm --lifetime --allow --clear-allow --confirm-forwarded --no-confirm-forwarded --local-only --no-local-only --confirm-window --no-confirm-window -h --help" -- "$cur" ;;
    help) compgen -W "$subs" -- "$cur" ;;
    *) compgen -W "-h --help" -- "$cur" ;;
    esac
}

_tsagent() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local agent_opts="-a -c -s -D -d -k -t -E -O -P -h --help --new --vault --audit-log
        --lock-after --confirm-forwarded --confirm-window --no-unlock-prompt --allow-forwarded-changes --max-connections --idle-timeout --strict"
    local subs="vault status lock unlock approvals hosts add log init"
    local i sub= at=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -a | -t | -E | -O | -P | --vault | --audit-log | --lock-after | --confirm-window | --max-connections | --idle-timeout)
            ((i++))
            ;;
        -*) ;;
        *)
            sub=${COMP_WORDS[i]} at=$((i + 1))
            break
            ;;
        esac
    done
    case $sub in
    vault)
        mapfile -t COMPREPLY < <(_tsagent_vault "$at")
        return
        ;;
    status) mapfile -t COMPREPLY < <(compgen -W "--json" -- "$cur") && return ;;
    hosts) mapfile -t COMPREPLY < <(compgen -W "forget --all -h --help" -- "$cur") && return ;;
    approvals) mapfile -t COMPREPLY < <(compgen -W "clear" -- "$cur") && return ;;
    lock | unlock)
        [[ $prev == --passphrase-fd ]] && return
        mapfile -t COMPREPLY < <(compgen -W "--passphrase-fd" -- "$cur")
        return
        ;;
    log)
        if [[ $prev == --file ]]; then
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "-f --follow --json --file -h --help" -- "$cur")
        fi
        return
        ;;
    add)
        case $prev in
        -t | --passphrase-fd) return ;;
        --vault) mapfile -t COMPREPLY < <(compgen -f -- "$cur") && return ;;
        esac
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "--save -c -t --local-only --vault --passphrase-fd" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
        return
        ;;
    init)
        if ((COMP_CWORD == at)); then
            if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "-h --help" -- "$cur")
            else
                mapfile -t COMPREPLY < <(compgen -W "bash zsh fish" -- "$cur")
            fi
            return
        fi
        agent_opts="-t -E -O -P --vault --audit-log --lock-after --confirm-forwarded
            --allow-forwarded-changes --max-connections --idle-timeout --strict"
        ;;
    '') ;;
    *)
        # tsagent command [arg ...]: complete the command's arguments as files
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return
        ;;
    esac
    case $prev in
    -E) mapfile -t COMPREPLY < <(compgen -W "sha256 md5" -- "$cur") && return ;;
    -O) mapfile -t COMPREPLY < <(compgen -W "no-restrict-websafe allow-remote-pkcs11" -- "$cur") && return ;;
    -a | --vault | --audit-log) mapfile -t COMPREPLY < <(compgen -f -- "$cur") && return ;;
    -t | -P | --lock-after | --max-connections | --idle-timeout) return ;;
    esac
    if [[ $cur == -* || -n $sub ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$agent_opts" -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur"; compgen -c -- "$cur")
    fi
}

complete -F _tsagent tsagent
