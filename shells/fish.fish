# vrift shell hook for fish. Load it from ~/.config/fish/config.fish:
#   vrift hook fish | source
# Before each prompt and on each directory change, `vrift __hook-env` prints
# the code that enters the rift of the trusted project containing $PWD, or
# wakes from the one left; it prints nothing (quickly) when nothing changed.
function __vrift_hook --on-event fish_prompt --on-variable PWD
    {{vrift}} __hook-env --shell fish | source
end
