# vrift shell hook for zsh. Load it from ~/.zshrc:
#   eval "$(vrift hook zsh)"
# Before each prompt and on each directory change, `vrift __hook-env` prints
# the code that enters the rift of the trusted project containing $PWD, or
# wakes from the one left; it prints nothing (quickly) when nothing changed.
#
# The shell itself is put in the view too (its redirections, `test`, globs,
# `./prog`): an interactive zsh restarts once, here, with vrift's library
# preloaded but dormant; entering a project switches it on in this process,
# leaving switches it off. Children get back the LD_PRELOAD the shell had.
# VRIFT_NO_SHELL_VIEW=1 keeps the shell as it is (it then says so once on
# entering a project).
if [[ -o interactive && -z ${VRIFT_SHELL_VIEW-} && -z ${VRIFT_NO_SHELL_VIEW-} && -r {{shim}} && -r /proc/$$/cmdline ]]; then
  __vrift_zsh=/proc/$$/exe
  __vrift_zsh=${__vrift_zsh:A}
  if [[ -x $__vrift_zsh ]]; then
    # The same arguments again; a login shell stays one.
    __vrift_argv=(${(0)"$(</proc/$$/cmdline)"})
    __vrift_login=()
    [[ ${__vrift_argv[1]-} == -* ]] && __vrift_login=(-l)
    SHLVL=$((${SHLVL:-1} - 1))
    exec env VRIFT_SHELL_VIEW=1 VRIFT_SHELL_PRELOAD="${LD_PRELOAD-}" VRIFT_EXE={{vrift}} \
      LD_PRELOAD={{shim}}"${LD_PRELOAD:+:$LD_PRELOAD}" \
      "$__vrift_zsh" "${__vrift_login[@]}" "${(@)__vrift_argv[2,-1]}"
  fi
  unset __vrift_zsh
fi
if [[ -n ${VRIFT_SHELL_VIEW-} ]]; then
  if [[ -n ${VRIFT_SHELL_PRELOAD-} ]]; then
    export LD_PRELOAD=$VRIFT_SHELL_PRELOAD
  else
    unset LD_PRELOAD
  fi
  unset VRIFT_SHELL_VIEW VRIFT_SHELL_PRELOAD
fi
__vrift_hook() {
  local __vrift_hook_ret=$? __vrift_hook_code
  emulate -L zsh
  if __vrift_hook_code="$({{vrift}} __hook-env --shell zsh)"; then
    if [[ -n "$__vrift_hook_code" ]]; then
      eval "$__vrift_hook_code"
    fi
  fi
  return $__vrift_hook_ret
}
autoload -Uz add-zsh-hook
add-zsh-hook precmd __vrift_hook
add-zsh-hook chpwd __vrift_hook
