# vrift shell hook for zsh. Load it from ~/.zshrc:
#   eval "$(vrift hook zsh)"
# Before each prompt and on each directory change, `vrift __hook-env` prints
# the code that enters the rift of the trusted project containing $PWD, or
# wakes from the one left; it prints nothing (quickly) when nothing changed.
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
