//! Exports the `crux` binary's symbols on Linux (`-rdynamic`), so an
//! artifact's shared library resolves the matrix-product routine its
//! chunk function imports (`crux_gemm_f64`) against this process.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-rdynamic");
    }
}
