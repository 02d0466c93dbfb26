# fish completion for tsagent(1). Install: copy to
# ~/.config/fish/completions/tsagent.fish (or /usr/share/fish/vendor_completions.d/).

set -l __tsagent_subcommands vault status lock unlock approvals hosts add log init
set -l __tsagent_vault_commands init import generate list export-pub remove rename set passwd verify help

# The subcommand (first non-option word), or nothing.
function __tsagent_subcommand
    set -l words (commandline -opc)
    set -e words[1]
    while set -q words[1]
        switch $words[1]
            case -a -t -E -O -P --vault --audit-log --lock-after --confirm-window --max-connections --idle-timeout
                set -e words[1]
            case '-*'
            case '*'
                echo $words[1]
                return 0
        end
        set -e words[1]
    end
    return 1
end

function __tsagent_no_subcommand
    not __tsagent_subcommand >/dev/null
end

function __tsagent_using -a sub
    set -l s (__tsagent_subcommand)
    and test "$s" = $sub
end

# The vault command after "tsagent vault", or nothing.
function __tsagent_vault_command
    set -l words (commandline -opc)
    set -l seen 0
    for w in $words[2..-1]
        if test $seen = 0
            test $w = vault; and set seen 1
            continue
        end
        switch $w
            case --vault --passphrase-fd
                set seen 2
            case '-*'
            case '*'
                if test $seen = 2
                    set seen 1
                else
                    echo $w
                    return 0
                end
        end
    end
    return 1
end

function __tsagent_vault_using -a sub
    __tsagent_using vault; or return 1
    set -l s (__tsagent_vault_command)
    and test "$s" = $sub
end

function __tsagent_vault_none
    __tsagent_using vault; and not __tsagent_vault_command >/dev/null
end

complete -c tsagent -f

# The agent (ssh-agent's command line, and tsagent's own long options)
set -l n __tsagent_no_subcommand
complete -c tsagent -n $n -a "$__tsagent_subcommands"
complete -c tsagent -n $n -a vault -d 'manage the encrypted key vault'
complete -c tsagent -n $n -a status -d 'show the state of the agent'
complete -c tsagent -n $n -a lock -d 'lock the agent with a password (as ssh-add -x)'
complete -c tsagent -n $n -a unlock -d 'unlock the agent and load the vault keys'
complete -c tsagent -n $n -a hosts -d 'which key each host accepted (hosts forget)'
complete -c tsagent -n $n -a approvals -d 'close every approval window (approvals clear)'
complete -c tsagent -n $n -a add -d 'add key files to the agent (and the vault)'
complete -c tsagent -n $n -a log -d 'show the audit log'
complete -c tsagent -n $n -a init -d 'print the rc-file snippet for a shell'
complete -c tsagent -n $n -s a -r -F -d 'bind the agent to this socket'
complete -c tsagent -n $n -s c -d 'print C-shell commands'
complete -c tsagent -n $n -s s -d 'print Bourne shell commands'
complete -c tsagent -n $n -s D -d 'run in the foreground'
complete -c tsagent -n $n -s d -d 'run in the foreground with a debug log'
complete -c tsagent -n $n -s k -d 'kill the agent named by $SSH_AGENT_PID'
complete -c tsagent -n $n -s h -l help -d 'show help'
complete -c tsagent -n $n -l new -d 'start a new agent instead of re-using the running one'
for n in __tsagent_no_subcommand '__tsagent_using init'
    complete -c tsagent -n $n -s t -x -d 'default key lifetime (90, 10m, 1h30m)'
    complete -c tsagent -n $n -s E -x -a 'sha256 md5' -d 'fingerprint hash'
    complete -c tsagent -n $n -s O -x -a 'no-restrict-websafe allow-remote-pkcs11' -d option
    complete -c tsagent -n $n -s P -x -d 'allowed PKCS#11 providers (not supported)'
    complete -c tsagent -n $n -l vault -r -F -d 'vault file'
    complete -c tsagent -n $n -l audit-log -r -F -d 'audit log file'
    complete -c tsagent -n $n -l lock-after -x -d 'lock after this long without a signature'
    complete -c tsagent -n $n -l confirm-forwarded -d 'ask before any use through a forwarded connection'
    complete -c tsagent -n $n -l no-unlock-prompt -d 'never ask for the vault passphrase when locked'
    complete -c tsagent -n $n -l confirm-window -x -d 'after a yes, do not ask the same use again for this long'
    complete -c tsagent -n $n -l allow-forwarded-changes -d 'serve changes from forwarded connections'
    complete -c tsagent -n $n -l max-connections -x -d 'connections served at once'
    complete -c tsagent -n $n -l idle-timeout -x -d 'close connections silent this long'
    complete -c tsagent -n $n -l strict -d 'refuse to start if process protection fails'
end

# status, unlock, add, log, init
complete -c tsagent -n '__tsagent_using status' -l json -d 'print one JSON object'
complete -c tsagent -n '__tsagent_using hosts' -x -a forget -d 'forget what was learned for a host'
complete -c tsagent -n '__tsagent_using hosts' -l all -d 'every host'
complete -c tsagent -n '__tsagent_using approvals' -x -a clear -d 'close every approval window'
complete -c tsagent -n '__tsagent_using unlock' -l passphrase-fd -x -d 'read the passphrase from this fd'
complete -c tsagent -n '__tsagent_using lock' -l passphrase-fd -x -d 'read the lock password from this fd'
complete -c tsagent -n '__tsagent_using add' -F
complete -c tsagent -n '__tsagent_using add' -l save -d 'also store the keys in the vault'
complete -c tsagent -n '__tsagent_using add' -l local-only -d 'neither list nor use through a forwarded agent'
complete -c tsagent -n '__tsagent_using add' -s c -d 'ask for confirmation before each use'
complete -c tsagent -n '__tsagent_using add' -s t -x -d 'key lifetime'
complete -c tsagent -n '__tsagent_using add' -l vault -r -F -d 'vault file'
complete -c tsagent -n '__tsagent_using add' -l passphrase-fd -x -d 'read passphrases from this fd'
complete -c tsagent -n '__tsagent_using log' -s f -l follow -d 'keep printing new records'
complete -c tsagent -n '__tsagent_using log' -l json -d 'print the raw JSON lines'
complete -c tsagent -n '__tsagent_using log' -l file -r -F -d 'the log to read'
complete -c tsagent -n '__tsagent_using log' -s h -l help -d 'show help'
complete -c tsagent -n '__tsagent_using init' -a 'bash zsh fish' -d shell
complete -c tsagent -n '__tsagent_using init' -s h -l help -d 'show help'

# vault
complete -c tsagent -n __tsagent_vault_none -a "$__tsagent_vault_commands"
complete -c tsagent -n __tsagent_vault_none -l vault -r -F -d 'vault file'
complete -c tsagent -n __tsagent_vault_none -l passphrase-fd -x -d 'read passphrases from this fd'
complete -c tsagent -n '__tsagent_using vault' -s h -l help -d 'show help'
for sub in init passwd
    complete -c tsagent -n "__tsagent_vault_using $sub" -l kdf-memory -x -d 'argon2id memory in KiB'
    complete -c tsagent -n "__tsagent_vault_using $sub" -l kdf-time -x -d 'argon2id passes'
    complete -c tsagent -n "__tsagent_vault_using $sub" -l kdf-parallelism -x -d 'argon2id lanes'
end
for sub in import generate
    complete -c tsagent -n "__tsagent_vault_using $sub" -l confirm -d 'ask for confirmation before each use'
    complete -c tsagent -n "__tsagent_vault_using $sub" -l lifetime -x -d 'lifetime after unlocking'
end
complete -c tsagent -n '__tsagent_vault_using import' -F
complete -c tsagent -n '__tsagent_vault_using import' -l sk-provider -r -F -d 'middleware of security keys'
complete -c tsagent -n '__tsagent_vault_using generate' -s t -l type -x -a 'ed25519 ecdsa rsa mldsa44-ed25519' -d 'key type'
complete -c tsagent -n '__tsagent_vault_using generate' -s b -l bits -x -a '256 384 521 2048 3072 4096' -d 'key size'
complete -c tsagent -n '__tsagent_vault_using generate' -s C -l comment -x -d 'key comment'
complete -c tsagent -n '__tsagent_vault_using set' -l confirm -d 'ask for confirmation before each use'
complete -c tsagent -n '__tsagent_vault_using set' -l no-confirm -d 'do not ask for confirmation'
complete -c tsagent -n '__tsagent_vault_using set' -l lifetime -x -d 'lifetime after unlocking, or none'
complete -c tsagent -n '__tsagent_vault_using set' -l allow -x -d 'allow use only on this hop'
complete -c tsagent -n '__tsagent_vault_using set' -l clear-allow -d 'remove all destination constraints'
complete -c tsagent -n '__tsagent_vault_using set' -l confirm-forwarded -d 'ask when used through a forwarded agent'
complete -c tsagent -n '__tsagent_vault_using set' -l no-confirm-forwarded -d 'do not ask for forwarded use'
complete -c tsagent -n '__tsagent_vault_using set' -l local-only -d 'neither list nor use through a forwarded agent'
complete -c tsagent -n '__tsagent_vault_using set' -l no-local-only -d 'serve through forwarded agents too'
complete -c tsagent -n '__tsagent_vault_using set' -l confirm-window -x -d 'after a yes, do not ask again for (5m; 0 = every time)'
complete -c tsagent -n '__tsagent_vault_using set' -l no-confirm-window -d "use the agent's --confirm-window again"
complete -c tsagent -n '__tsagent_vault_using help' -a "$__tsagent_vault_commands"
