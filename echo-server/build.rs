//! Link the stack unwinder (libgcc's `_Unwind_*`) into the program
//! instead of loading it as a shared library, libgcc_s.so.1.
//!
//! Rust's standard library needs the unwinder (panics, backtraces); on
//! Linux it links `-lgcc_s`, the shared one, and so every echo-server
//! process maps libgcc_s: four mappings (its code, its read-only data,
//! its data, its relocations) that every fork() copies and every exit
//! tears down, per connection. libgcc_eh.a is the same unwinder as a
//! static archive (it ships with gcc). Named here, it comes first on the
//! link line, resolves the unwinder's symbols, and the linker, which
//! keeps a shared library only if something still needs it
//! (`--as-needed`), drops libgcc_s. `ldd target/release/echo-server`
//! shows no libgcc_s; `bench` measures what it buys (see src/fork.rs).
fn main() {
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
}
