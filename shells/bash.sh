# vrift shell hook for bash. Load it from ~/.bashrc:
#   eval "$(vrift hook bash)"
# On each prompt, `vrift __hook-env` prints the code that enters the rift of
# the trusted project containing $PWD, or wakes from the one left; it prints
# nothing (quickly) when nothing changed. `$?` is kept for the prompt and the
# other PROMPT_COMMAND entries; `set -u` and `set -e` are safe.
#
# The shell itself is put in the view too (its redirections, `test`, globs,
# `./prog`): an interactive bash restarts once, here, with vrift's library
# preloaded but dormant; entering a project switches it on in this process,
# leaving switches it off. Children get back the LD_PRELOAD the shell had.
# VRIFT_NO_SHELL_VIEW=1 keeps the shell as it is (it then says so once on
# entering a project).
if [[ $- == *i* && -z ${VRIFT_SHELL_VIEW-} && -z ${VRIFT_NO_SHELL_VIEW-} ]] \
  && [[ -r {{shim}} && -x ${BASH-} && -r /proc/$$/cmdline ]]; then
  # The same arguments again (an --rcfile, -i); a login shell stays one.
  mapfile -d '' __vrift_argv < /proc/$$/cmdline
  __vrift_login=()
  [[ ${__vrift_argv[0]-} == -* ]] && __vrift_login=(-l)
  SHLVL=$((${SHLVL:-1} - 1))
  exec env VRIFT_SHELL_VIEW=1 VRIFT_SHELL_PRELOAD="${LD_PRELOAD-}" VRIFT_EXE={{vrift}} \
    LD_PRELOAD={{shim}}"${LD_PRELOAD:+:$LD_PRELOAD}" \
    "$BASH" ${__vrift_login[@]+"${__vrift_login[@]}"} "${__vrift_argv[@]:1}"
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
  if __vrift_hook_code="$({{vrift}} __hook-env --shell bash)"; then
    if [ -n "$__vrift_hook_code" ]; then
      eval "$__vrift_hook_code"
    fi
  fi
  # bash restores $? itself after PROMPT_COMMAND; returning it serves the
  # entries after this one, except under `set -e`, where it would end the shell.
  case $- in
    *e*) return 0 ;;
  esac
  return "$__vrift_hook_ret"
}
if [[ "$(declare -p PROMPT_COMMAND 2>/dev/null)" == "declare -a"* ]]; then
  case " ${PROMPT_COMMAND[*]} " in
    *" __vrift_hook "*) ;;
    *) PROMPT_COMMAND=(__vrift_hook "${PROMPT_COMMAND[@]}") ;;
  esac
else
  case ";${PROMPT_COMMAND-};" in
    *";__vrift_hook;"*) ;;
    *) PROMPT_COMMAND="__vrift_hook${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
  esac
fi
