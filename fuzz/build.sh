#!/bin/sh
# Builds the fuzz targets as `cargo fuzz build` does (same flags), for
# machines without the cargo-fuzz binary: `sh fuzz/build.sh`, then
# `fuzz/target/x86_64-unknown-linux-gnu/release/NAME corpus/NAME`.
set -e
cd "$(dirname "$0")"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks -Zsanitizer=address" \
    exec cargo +nightly build --release --target x86_64-unknown-linux-gnu --bins "$@"
