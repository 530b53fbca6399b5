//! Throughput of the matrix-product routine compiled kernels call for the
//! IR's `gemm` (`crux_compiler::backend::gemm`), per instruction set, on
//! the shapes of the benchmark problems, against a plain Rust triple loop
//! with the same chains (`f64::mul_add`, ascending `l`; compiled with FMA
//! instructions where the CPU has them) in the same process.
//!
//! `taskset -c 0 cargo run --release -p crux-benches --bin gemm-bench -- [--json PATH]`
//!
//! Shapes: the BPINN's hidden layers (101×32 · 32×32, also with the weight
//! transposed, as the network's `x · Wᵀ` reads it), its weight gradients
//! (32×101 · 101×32), and gauss100's two matrix–vector products (`L θ`
//! through the column-major copy lowering makes, and `Lᵀ r`). Each figure
//! is the median of 5 runs of ≥ 0.2 s; every routine's output is checked
//! bit-identical to the loop's first.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::time::Instant;

use crux_benches::report::{median, write_json};

use crux_compiler::backend::gemm::{GemmFn, Isa};

/// One product: dimensions and the (row, column) strides of `a` and `b`.
struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    a: (usize, usize),
    b: (usize, usize),
}

/// Multiply-adds per second of `f`, median of 5 timed runs.
fn rate(work: usize, mut f: impl FnMut()) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed().as_secs_f64() < 0.2 {
            for _ in 0..16 {
                f();
                n += 1;
            }
        }
        runs.push((n as f64 * work as f64) / t.elapsed().as_secs_f64());
    }
    median(runs)
}

/// The chains, written plainly (the baseline runs it with FMA
/// instructions; see [`baseline`]).
#[inline(always)]
fn reference(s: &Shape, a: &[f64], b: &[f64], out: &mut [f64]) {
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = 0.0f64;
            for l in 0..s.k {
                acc = a[i * s.a.0 + l * s.a.1].mul_add(b[l * s.b.0 + j * s.b.1], acc);
            }
            out[i * s.n + j] = acc;
        }
    }
}

/// [`reference()`] compiled with the `fma` target feature (scalar
/// `vfmadd`), so the baseline is a fair scalar loop, not libm's `fma`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn reference_fma(s: &Shape, a: &[f64], b: &[f64], out: &mut [f64]) {
    reference(s, a, b, out)
}

/// The baseline loop: with FMA instructions where the CPU has them.
fn baseline(s: &Shape, a: &[f64], b: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA.
        return unsafe { reference_fma(s, a, b, out) };
    }
    reference(s, a, b, out)
}

fn main() {
    let shapes = [
        Shape {
            name: "bpinn layer x·W (101x32x32)",
            m: 101,
            n: 32,
            k: 32,
            a: (32, 1),
            b: (32, 1),
        },
        Shape {
            name: "bpinn layer x·Wt (101x32x32)",
            m: 101,
            n: 32,
            k: 32,
            a: (32, 1),
            b: (1, 32),
        },
        Shape {
            name: "bpinn weight gradient (32x32x101)",
            m: 32,
            n: 32,
            k: 101,
            a: (1, 32),
            b: (32, 1),
        },
        Shape {
            name: "gauss100 L*theta (100x1x100, column-major L)",
            m: 100,
            n: 1,
            k: 100,
            a: (1, 100),
            b: (1, 1),
        },
        Shape {
            name: "gauss100 Lt*r (100x1x100)",
            m: 100,
            n: 1,
            k: 100,
            a: (1, 100),
            b: (1, 1),
        },
    ];
    let mut rows = Vec::new();
    println!(
        "| product | loop (GFMA/s) | {} |",
        Isa::ALL
            .map(|i| format!("{i:?} (GFMA/s, × loop)"))
            .join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(Isa::ALL.len()));
    for s in &shapes {
        let alen = (s.m - 1) * s.a.0 + (s.k - 1) * s.a.1 + 1;
        let blen = (s.k - 1) * s.b.0 + (s.n - 1) * s.b.1 + 1;
        let a: Vec<f64> = (0..alen).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..blen).map(|i| (i as f64 * 1.3).cos()).collect();
        let mut want = vec![0.0; s.m * s.n];
        reference(s, &a, &b, &mut want);
        let work = s.m * s.n * s.k;
        let mut out = vec![0.0; s.m * s.n];
        let base = rate(work, || {
            baseline(s, &a, &b, &mut out);
            std::hint::black_box(&out);
        });
        let mut cells = Vec::new();
        let mut json = serde_json::Map::new();
        json.insert("loop_fma_per_s".into(), base.into());
        for isa in Isa::ALL {
            let Some(f): Option<GemmFn> = isa.routine() else {
                cells.push("not on this CPU".to_string());
                continue;
            };
            let call = |out: &mut [f64]| {
                // SAFETY: the views are in bounds by construction, the
                // output row-major and disjoint from the operands.
                unsafe {
                    f(
                        s.m as u64,
                        s.n as u64,
                        s.k as u64,
                        a.as_ptr(),
                        s.a.0 as u64,
                        s.a.1 as u64,
                        b.as_ptr(),
                        s.b.0 as u64,
                        s.b.1 as u64,
                        out.as_mut_ptr(),
                        s.n as u64,
                        1,
                    )
                }
            };
            let mut got = vec![0.0; s.m * s.n];
            call(&mut got);
            if got
                .iter()
                .zip(&want)
                .any(|(x, y)| x.to_bits() != y.to_bits())
            {
                eprintln!("error: {isa:?} differs from the loop on {}", s.name);
                std::process::exit(1);
            }
            let r = rate(work, || {
                call(&mut out);
                std::hint::black_box(&out);
            });
            cells.push(format!("{:.2} ({:.1}×)", r / 1e9, r / base));
            json.insert(format!("{isa:?}_fma_per_s"), r.into());
        }
        println!("| {} | {:.2} | {} |", s.name, base / 1e9, cells.join(" | "));
        rows.push((s.name, serde_json::Value::Object(json)));
    }
    let out =
        serde_json::Value::Object(rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    write_json(&out);
}
