//! Compiles the C layer (variadic entry points stable Rust cannot define) and
//! links with a version script that exports only the interposed symbols.

fn main() {
    println!("cargo:rerun-if-changed=src/c/variadic.c");
    println!("cargo:rerun-if-changed=shim.map");
    cc::Build::new()
        .file("src/c/variadic.c")
        .flag("-fvisibility=default")
        .flag("-U_FORTIFY_SOURCE")
        .define("_GNU_SOURCE", None)
        .warnings(true)
        .cargo_metadata(false)
        .compile("vrift_variadic");
    let map = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("shim.map");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
    // The C objects must be kept even though Rust does not reference them.
    println!("cargo:rustc-cdylib-link-arg=-Wl,--whole-archive");
    println!(
        "cargo:rustc-cdylib-link-arg={}/libvrift_variadic.a",
        std::env::var("OUT_DIR").unwrap()
    );
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-whole-archive");
    // Without std (the shipped panic=abort build) nothing else names libc:
    // record it as needed so the shim's references bind to its versions.
    println!("cargo:rustc-cdylib-link-arg=-lc");
    // No crt start files: the library's constructor is in .init_array, and
    // crtbegin's _init/__do_global_dtors_aux would only add page faults to
    // every process start and exit.
    println!("cargo:rustc-cdylib-link-arg=-nostartfiles");
}
