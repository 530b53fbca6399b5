//! A small C program calls crux's C ABI (`include/crux.h`, linked against
//! the `cdylib`): its log-density and gradient equal the Rust API's bit for
//! bit, and errors come back as NULL / NaN with a message.

use std::path::PathBuf;
use std::process::Command;

const PROGRAM: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include "crux.h"
int main(void) {
    crux_model *bad = crux_model_new("nonsense", 1, 1.0);
    printf("bad %s\n", bad == NULL ? crux_last_error() : "not NULL");
    crux_model *m = crux_model_new("quickstart", 42, 100.0);
    if (m == NULL) { printf("error %s\n", crux_last_error()); return 1; }
    size_t d = crux_model_dim(m);
    double theta[2] = {1.5, -0.25}, grad[2];
    double lp = crux_logp_grad(m, theta, grad);
    printf("dim %zu\nlogp %.17g\ngrad %.17g %.17g\n", d, lp, grad[0], grad[1]);
    double nan = crux_logp_grad(m, NULL, grad);
    printf("null %s %d\n", crux_last_error(), nan != nan);
    crux_model_free(m);
    return 0;
}
"#;

/// The directory cargo put `libcrux_capi.so` in (next to `deps/`).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

#[test]
fn a_c_program_gets_the_rust_values() {
    let dir = lib_dir();
    let lib = dir.join(if cfg!(target_os = "macos") {
        "libcrux_capi.dylib"
    } else {
        "libcrux_capi.so"
    });
    if !lib.exists() || Command::new("cc").arg("--version").output().is_err() {
        eprintln!("skipped: no cdylib at {} or no C compiler", lib.display());
        return;
    }
    let work = std::env::temp_dir().join(format!("crux-capi-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let src = work.join("prog.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = work.join("prog");
    let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = Command::new("cc")
        .arg(&src)
        .arg("-I")
        .arg(&include)
        .arg("-L")
        .arg(&dir)
        .arg("-lcrux_capi")
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", &dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |key: &str| -> Vec<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no `{key}` in\n{text}"))
            .split(' ')
            .map(str::to_string)
            .collect()
    };
    assert!(
        line("bad").join(" ").contains("unknown problem `nonsense`"),
        "{text}"
    );
    assert_eq!(line("dim"), ["2"]);
    // The Rust API on the same model.
    let mut m = crux_capi::model("quickstart", 42, 100.0).unwrap();
    let mut g = [0.0; 2];
    // SAFETY: a live model, two entries each.
    let lp = unsafe { crux_capi::crux_logp_grad(&mut m, [1.5, -0.25].as_ptr(), g.as_mut_ptr()) };
    let parse = |s: &str| s.parse::<f64>().unwrap();
    assert_eq!(parse(&line("logp")[0]).to_bits(), lp.to_bits());
    let cg = line("grad");
    assert_eq!(
        (parse(&cg[0]).to_bits(), parse(&cg[1]).to_bits()),
        (g[0].to_bits(), g[1].to_bits())
    );
    let null = line("null").join(" ");
    assert!(
        null.contains("theta or grad is NULL") && null.ends_with('1'),
        "{null}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
