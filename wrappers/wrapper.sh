#!/bin/sh
# vrift wrapper — generated into .vrift/bin by `vrift init` (and again by
# `vrift run` or entering the inception when it is stale); do not edit.
# vrift-wrapper: {{stamp}}
#
# A command that cannot load vrift's LD_PRELOAD library (a static or setuid
# binary, or one of macOS's SIP-protected tools) would change the disk
# instead of the view. This wrapper, first on PATH in the inception, finds
# the real command past .vrift/bin and hands both to `vrift __wrap`, which
# runs vrift's own applet when an argument lies in the project and execs the
# real command, untouched, otherwise.

vrift_name='{{name}}'
vrift_path='{{path}}'
vrift_root='{{root}}'
vrift_bin='{{bin}}'
vrift_exe='{{vrift}}'
vrift_os='{{os}}'

# Wrappers that keep finding each other (a ccache-style masquerade directory
# that looks the command up on PATH again) stop here instead of forking
# forever. Real nesting (make running make running rm) stays far below.
vrift_depth=${VRIFT_WRAPPER_DEPTH:-0}
case $vrift_depth in
  '' | *[!0-9]*) vrift_depth=0 ;;
esac
if [ "$vrift_depth" -ge 32 ]; then
  printf '%s\n' "vrift wrapper: $vrift_name: wrappers call each other in a loop (VRIFT_WRAPPER_DEPTH=$vrift_depth); check PATH" >&2
  exit 126
fi
VRIFT_WRAPPER_DEPTH=$((vrift_depth + 1))
export VRIFT_WRAPPER_DEPTH

# macOS strips DYLD_* from the environment of SIP-protected binaries such as
# /bin/sh itself: put the shim back so that the real command, and whatever it
# starts, sees the view.
if [ "$vrift_os" = Darwin ] && [ -n "${VRIFT_SHIM_PATH:-}" ]; then
  case ":${DYLD_INSERT_LIBRARIES:-}:" in
    *":$VRIFT_SHIM_PATH:"*) ;;
    *)
      DYLD_INSERT_LIBRARIES=$VRIFT_SHIM_PATH${DYLD_INSERT_LIBRARIES:+:$DYLD_INSERT_LIBRARIES}
      export DYLD_INSERT_LIBRARIES
      ;;
  esac
fi

# A command named in [wrappers] by its path in the project (such as
# node_modules/.bin/tsc, which may exist only in the rift) is that file, run
# from here: in the inception this sh has the library loaded, so it finds and
# runs the file of the view; vrift itself never acts through the library.
if [ -n "$vrift_path" ]; then
  exec "$vrift_root/$vrift_path" "$@"
fi

# The real command: the first on PATH that is not in this .vrift/bin, not
# this wrapper and not vrift itself. `-ef` compares the files themselves, so
# a PATH listing .vrift/bin twice or through a symlink, or a symlink to vrift
# named like the command, is skipped too. (`-ef` is in POSIX.1-2024 and in
# every sh vrift meets: dash, bash, busybox, zsh, ksh.)
vrift_real=
vrift_rest=$PATH:
while [ -n "$vrift_rest" ]; do
  vrift_dir=${vrift_rest%%:*}
  vrift_rest=${vrift_rest#*:}
  [ -n "$vrift_dir" ] || vrift_dir=.
  vrift_cand=$vrift_dir/$vrift_name
  if [ ! -f "$vrift_cand" ] || [ ! -x "$vrift_cand" ]; then
    continue
  fi
  # shellcheck disable=SC3013 # -ef: see above
  if [ "$vrift_dir" -ef "$vrift_bin" ] || [ "$vrift_cand" -ef "$0" ] || [ "$vrift_cand" -ef "$vrift_exe" ]; then
    continue
  fi
  vrift_real=$vrift_cand
  break
done

# vrift: where it was when this wrapper was written, else on PATH.
vrift_was=$vrift_exe
if [ ! -x "$vrift_exe" ]; then
  vrift_exe=$(command -v vrift 2>/dev/null) || vrift_exe=
fi
if [ -n "$vrift_exe" ]; then
  exec "$vrift_exe" __wrap "$vrift_root" "$vrift_name" "$vrift_real" "$@"
fi

# Without vrift nothing can act on the view: say so, and run the real command.
if [ -n "$vrift_real" ]; then
  printf '%s\n' "vrift wrapper: $vrift_name: vrift is gone (was $vrift_was); running $vrift_real without it" >&2
  exec "$vrift_real" "$@"
fi
printf '%s\n' "$vrift_name: command not found" >&2
exit 127
