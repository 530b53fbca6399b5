use crux_compiler::backend::gemm::Isa;
use std::time::Instant;
fn main() {
    for &(m, n, k, bt) in &[
        (101usize, 32usize, 32usize, false),
        (101, 32, 32, true),
        (32, 32, 101, false),
        (1, 100, 100, false),
        (100, 1, 100, false),
    ] {
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64).cos()).collect();
        let mut o = vec![0.0; m * n];
        let (brs, bcs) = if bt { (1, k) } else { (n, 1) };
        for isa in Isa::ALL {
            let Some(f) = isa.routine() else { continue };
            let t = Instant::now();
            let mut reps = 0u64;
            while t.elapsed().as_secs_f64() < 0.3 {
                for _ in 0..100 {
                    unsafe {
                        f(
                            m as u64,
                            n as u64,
                            k as u64,
                            a.as_ptr(),
                            k as u64,
                            1,
                            b.as_ptr(),
                            brs as u64,
                            bcs as u64,
                            o.as_mut_ptr(),
                            n as u64,
                            1,
                        )
                    };
                }
                reps += 100;
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "{m}x{n}x{k} bt={bt} {isa:?}: {:.2} GFMA/s, {:.2} us/call",
                (m * n * k) as f64 * reps as f64 / s / 1e9,
                s / reps as f64 * 1e6
            );
        }
    }
}
