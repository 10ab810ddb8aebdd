# vrift shell hook for fish. Load it from ~/.config/fish/config.fish:
#   vrift hook fish | source
# Before each prompt and on each directory change, `vrift __hook-env` prints
# the code that enters the rift of the trusted project containing $PWD, or
# wakes from the one left; it prints nothing (quickly) when nothing changed.
#
# The shell itself is put in the view too (its redirections, `test`, globs,
# `./prog`): an interactive fish restarts once, here, with vrift's library
# preloaded but dormant; entering a project switches it on in this process,
# leaving switches it off. Children get back the LD_PRELOAD the shell had.
# VRIFT_NO_SHELL_VIEW=1 keeps the shell as it is (it then says so once on
# entering a project).
if status is-interactive; and not set -q VRIFT_SHELL_VIEW; and not set -q VRIFT_NO_SHELL_VIEW; and test -r {{shim}}; and test -r /proc/$fish_pid/cmdline; and test -t 2
    # The same arguments again; a login shell stays one.
    set -l __vrift_argv (string split0 < /proc/$fish_pid/cmdline)
    set -l __vrift_login
    string match -q -- '-*' $__vrift_argv[1]; and set __vrift_login -l
    set -l __vrift_preload
    set -q LD_PRELOAD; and set __vrift_preload "$LD_PRELOAD"
    set -l __vrift_new {{shim}}
    test -n "$__vrift_preload"; and set __vrift_new "$__vrift_new:$__vrift_preload"
    # (`vrift hook fish | source` reads this from a pipe: the new shell
    # takes the terminal, not the pipe, as its input.)
    exec env VRIFT_SHELL_VIEW=1 VRIFT_SHELL_PRELOAD="$__vrift_preload" VRIFT_EXE={{vrift}} LD_PRELOAD="$__vrift_new" (status fish-path) $__vrift_login $__vrift_argv[2..-1] </dev/tty
end
if set -q VRIFT_SHELL_VIEW
    if test -n "$VRIFT_SHELL_PRELOAD"
        set -gx LD_PRELOAD $VRIFT_SHELL_PRELOAD
    else
        set -e LD_PRELOAD
    end
    set -e VRIFT_SHELL_VIEW
    set -e VRIFT_SHELL_PRELOAD
end
function __vrift_hook --on-event fish_prompt --on-variable PWD
    {{vrift}} __hook-env --shell fish | source
end
