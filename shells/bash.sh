# vrift shell hook for bash. Load it from ~/.bashrc:
#   eval "$(vrift hook bash)"
# On each prompt, `vrift __hook-env` prints the code that enters the rift of
# the trusted project containing $PWD, or wakes from the one left; it prints
# nothing (quickly) when nothing changed. `$?` is kept for the prompt and the
# other PROMPT_COMMAND entries; `set -u` and `set -e` are safe.
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
