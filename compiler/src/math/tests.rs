//! Accuracy tests: every expansion run through the reference interpreter
//! and compared with Rust's std (ulp = distance in ordered bit patterns).
//!
//! `cargo test -p crux-compiler math_ulp_table -- --ignored --nocapture`
//! prints the table of measured maximum errors with more points.

use super::*;
use crux_ir::kernel::{run, Access, Buffer, Function, Scalar};

type F1 = fn(&mut Builder, Value) -> Value;

fn kernel1(name: &str, f: F1) -> Function {
    let mut b = Builder::new(name);
    let n = b.param("n", Ty::I64);
    let xs = b.buffer("x", Ty::F64, Access::Read);
    let ys = b.buffer("y", Ty::F64, Access::Write);
    let zero = b.i64(0);
    b.for_(zero, n, &[], |b, i, _| {
        let x = b.load(xs, i);
        let y = f(b, x);
        b.store(ys, i, y);
        vec![]
    });
    b.finish(&[]).expect("valid kernel")
}

fn kernel2(name: &str) -> Function {
    let mut b = Builder::new(name);
    let n = b.param("n", Ty::I64);
    let xs = b.buffer("x", Ty::F64, Access::Read);
    let ys = b.buffer("y", Ty::F64, Access::Read);
    let zs = b.buffer("z", Ty::F64, Access::Write);
    let zero = b.i64(0);
    b.for_(zero, n, &[], |b, i, _| {
        let x = b.load(xs, i);
        let y = b.load(ys, i);
        let z = powf(b, x, y);
        b.store(zs, i, z);
        vec![]
    });
    b.finish(&[]).expect("valid kernel")
}

fn eval1(f: &Function, xs: &[f64]) -> Vec<f64> {
    let mut bufs = vec![Buffer::F64(xs.to_vec()), Buffer::F64(vec![0.0; xs.len()])];
    run(f, &[Scalar::I64(xs.len() as i64)], &mut bufs, u64::MAX).expect("runs");
    match bufs.pop() {
        Some(Buffer::F64(v)) => v,
        _ => unreachable!(),
    }
}

fn eval2(f: &Function, xs: &[f64], ys: &[f64]) -> Vec<f64> {
    let mut bufs = vec![
        Buffer::F64(xs.to_vec()),
        Buffer::F64(ys.to_vec()),
        Buffer::F64(vec![0.0; xs.len()]),
    ];
    run(f, &[Scalar::I64(xs.len() as i64)], &mut bufs, u64::MAX).expect("runs");
    match bufs.pop() {
        Some(Buffer::F64(v)) => v,
        _ => unreachable!(),
    }
}

/// Ordered integer image of a float (−0 and +0 map to 0).
fn ord(x: f64) -> i128 {
    let b = x.to_bits() as i64;
    if b < 0 {
        (i64::MIN as i128) - (b as i128)
    } else {
        b as i128
    }
}

/// Distance in ulp; NaN equals NaN only.
fn ulp(a: f64, b: f64) -> u64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0,
        (false, false) => (ord(a) - ord(b)).unsigned_abs().min(u64::MAX as u128) as u64,
        _ => u64::MAX,
    }
}

/// Deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn lin(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Log-uniform magnitude in `[lo, hi]` (both > 0), random sign if `signed`.
    fn logu(&mut self, lo: f64, hi: f64, signed: bool) -> f64 {
        let v = (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp();
        if signed && self.next() & 1 == 1 {
            -v
        } else {
            v
        }
    }
}

#[derive(Clone, Copy)]
enum Gen {
    Lin(f64, f64),
    Log(f64, f64, bool),
    /// `1 + lin(lo, hi)`.
    OnePlus(f64, f64),
    /// `1 ± log-uniform(lo, hi)`.
    OneLog(f64, f64),
    /// Doubles nearest to `k·π/2` for random `k` up to the bound.
    NearPio2(f64),
}

impl Gen {
    fn sample(self, r: &mut Rng) -> f64 {
        match self {
            Gen::Lin(a, b) => r.lin(a, b),
            Gen::Log(a, b, s) => r.logu(a, b, s),
            Gen::OnePlus(a, b) => 1.0 + r.lin(a, b),
            Gen::OneLog(a, b) => 1.0 + r.logu(a, b, true),
            Gen::NearPio2(m) => {
                let k = (r.unit() * m).round();
                let x = k * std::f64::consts::FRAC_PI_2;
                // a few ulp either side
                let d = (r.next() % 9) as i64 - 4;
                f64::from_bits((x.to_bits() as i64 + d) as u64)
            }
        }
    }
}

fn sigmoid_ref(x: f64) -> f64 {
    // e = exp(-|x|) from std; 1/(1+e) or e/(1+e) in double-double.
    let e = (-x.abs()).exp();
    let h = 1.0 + e;
    let l = e - (h - 1.0);
    let num = if x >= 0.0 { 1.0 } else { e };
    let q = num / h;
    let r = (-q).mul_add(h, num) - q * l;
    if x.is_nan() {
        x
    } else {
        q + r / h
    }
}

extern "C" {
    // The C library's erf (glibc, accurate to < 1 ulp): Rust's std has none
    // on stable.
    #[link_name = "erf"]
    fn c_erf(x: f64) -> f64;
}

fn erf_ref(x: f64) -> f64 {
    // SAFETY: a pure libm function of one double.
    unsafe { c_erf(x) }
}

fn softplus_ref(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

struct Fun {
    name: &'static str,
    f: F1,
    reference: fn(f64) -> f64,
    ranges: Vec<(&'static str, Gen)>,
}

fn functions() -> Vec<Fun> {
    use Gen::*;
    vec![
        Fun {
            name: "exp",
            f: exp,
            reference: f64::exp,
            ranges: vec![
                ("[-1,1]", Lin(-1.0, 1.0)),
                ("[-708,709.78]", Lin(-708.0, 709.78)),
                ("subnormal out [-745.1,-708]", Lin(-745.1, -708.0)),
                ("|x| in [1e-300,1]", Log(1e-300, 1.0, true)),
            ],
        },
        Fun {
            name: "expm1",
            f: expm1,
            reference: f64::exp_m1,
            ranges: vec![
                ("[-1,1]", Lin(-1.0, 1.0)),
                ("[-40,709.78]", Lin(-40.0, 709.78)),
                ("|x| in [1e-300,1]", Log(1e-300, 1.0, true)),
                ("|x| in [0.3,3]", Log(0.3, 3.0, true)),
            ],
        },
        Fun {
            name: "log",
            f: log,
            reference: f64::ln,
            ranges: vec![
                ("[5e-324,1.8e308]", Log(5e-324, f64::MAX, false)),
                ("1+[-0.3,0.42]", OnePlus(-0.3, 0.42)),
                ("[0.5,2]", Lin(0.5, 2.0)),
                ("1±[1e-15,1e-3]", OneLog(1e-15, 1e-3)),
            ],
        },
        Fun {
            name: "log1p",
            f: log1p,
            reference: f64::ln_1p,
            ranges: vec![
                ("[1e-300,1e300]", Log(1e-300, 1e300, false)),
                ("-[1e-300,1)", Log(1e-300, 0.999_999_999, false)),
                ("[-0.5,1]", Lin(-0.5, 1.0)),
            ],
        },
        Fun {
            name: "sin",
            f: sin,
            reference: f64::sin,
            ranges: vec![
                ("|x| in [8e8,1.8e308]", Log(8e8, f64::MAX, true)),
                ("near k·π/2, k<2^40", NearPio2(1.1e12)),
                ("[-10,10]", Lin(-10.0, 10.0)),
                ("|x| in [1e-300,8e8]", Log(1e-300, 8e8, true)),
                ("near k·π/2, k<5e8", NearPio2(5e8)),
            ],
        },
        Fun {
            name: "cos",
            f: cos,
            reference: f64::cos,
            ranges: vec![
                ("|x| in [8e8,1.8e308]", Log(8e8, f64::MAX, true)),
                ("near k·π/2, k<2^40", NearPio2(1.1e12)),
                ("[-10,10]", Lin(-10.0, 10.0)),
                ("|x| in [1e-300,8e8]", Log(1e-300, 8e8, true)),
                ("near k·π/2, k<5e8", NearPio2(5e8)),
            ],
        },
        Fun {
            name: "tan",
            f: tan,
            reference: f64::tan,
            ranges: vec![
                ("|x| in [8e8,1.8e308]", Log(8e8, f64::MAX, true)),
                ("near k·π/2, k<2^40", NearPio2(1.1e12)),
                ("[-10,10]", Lin(-10.0, 10.0)),
                ("|x| in [1e-300,8e8]", Log(1e-300, 8e8, true)),
                ("near k·π/2, k<5e8", NearPio2(5e8)),
            ],
        },
        Fun {
            name: "tanh",
            f: tanh,
            reference: f64::tanh,
            ranges: vec![
                ("[-3,3]", Lin(-3.0, 3.0)),
                ("|x| in [1e-300,30]", Log(1e-300, 30.0, true)),
            ],
        },
        Fun {
            name: "erf",
            f: erf,
            reference: erf_ref,
            ranges: vec![
                ("[-6,6]", Lin(-6.0, 6.0)),
                ("|x| in [1e-300,1]", Log(1e-300, 1.0, true)),
                ("|x| in [0.8,3]", Log(0.8, 3.0, true)),
            ],
        },
        Fun {
            name: "sigmoid",
            f: sigmoid,
            reference: sigmoid_ref,
            ranges: vec![
                ("[-40,40]", Lin(-40.0, 40.0)),
                ("[-745,-40]", Lin(-745.0, -40.0)),
                ("|x| in [1e-300,1]", Log(1e-300, 1.0, true)),
            ],
        },
        Fun {
            name: "softplus",
            f: softplus,
            reference: softplus_ref,
            ranges: vec![
                ("[-40,40]", Lin(-40.0, 40.0)),
                ("[-745,745]", Lin(-745.0, 745.0)),
                ("|x| in [1e-300,1]", Log(1e-300, 1.0, true)),
            ],
        },
    ]
}

/// Edge cases every function must get right: exactly when std's result is
/// NaN, infinite or zero, within 2 ulp otherwise.
const SPECIALS: [f64; 20] = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    f64::MIN_POSITIVE,
    -f64::MIN_POSITIVE,
    1.0,
    -1.0,
    2.0,
    -2.0,
    0.5,
    f64::MAX,
    -f64::MAX,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    709.782_712_893_384,
    709.79,
    -745.2,
    -745.13,
];

#[derive(Debug)]
struct Row {
    function: &'static str,
    range: &'static str,
    points: usize,
    max_ulp: u64,
    worst_x: f64,
    worst_y: f64,
}

/// Max ulp per function and range; with `dump`, also every
/// `function range x [y] result` line (bits in hex) for an offline check
/// against a high-precision oracle.
fn measure(per_range: usize, mut dump: Option<&mut String>) -> Vec<Row> {
    use std::fmt::Write;
    let mut rows = Vec::new();
    for fun in functions() {
        let k = kernel1(fun.name, fun.f);
        for (ri, (range, g)) in fun.ranges.iter().enumerate() {
            let mut r = Rng(0x5EED ^ (ri as u64 * 7919) ^ fun.name.len() as u64);
            let xs: Vec<f64> = (0..per_range).map(|_| g.sample(&mut r)).collect();
            let ys = eval1(&k, &xs);
            let mut row = Row {
                function: fun.name,
                range,
                points: xs.len(),
                max_ulp: 0,
                worst_x: 0.0,
                worst_y: 0.0,
            };
            for (&x, &y) in xs.iter().zip(&ys) {
                if let Some(d) = dump.as_deref_mut() {
                    let _ = writeln!(d, "{} {ri} {:x} {:x}", fun.name, x.to_bits(), y.to_bits());
                }
                let u = ulp(y, (fun.reference)(x));
                if u > row.max_ulp {
                    row.max_ulp = u;
                    row.worst_x = x;
                    row.worst_y = y;
                }
            }
            rows.push(row);
        }
    }
    // powf
    let k = kernel2("powf");
    let pow_ranges: [(&'static str, Gen, Gen); 5] = [
        (
            "x in [1e-300,1e300], |y·ln x|<700",
            Gen::Log(1e-300, 1e300, false),
            Gen::Lin(-1.0, 1.0),
        ),
        (
            "x in [0.5,2], y in [-1000,1000]",
            Gen::Lin(0.5, 2.0),
            Gen::Lin(-1000.0, 1000.0),
        ),
        (
            "x in 1±[1e-12,1e-3], |y| large",
            Gen::OnePlus(-1e-3, 1e-3),
            Gen::Log(1.0, 1e6, true),
        ),
        (
            "x<0, y integer in [-60,60]",
            Gen::Lin(-3.0, -0.3),
            Gen::Lin(-60.0, 60.0),
        ),
        (
            "x in [0,1e-300], subnormal out",
            Gen::Log(1e-300, 1e-200, false),
            Gen::Lin(1.0, 1.5),
        ),
    ];
    for (ri, (range, gx, gy)) in pow_ranges.iter().enumerate() {
        let mut r = Rng(0xB0B ^ (ri as u64 * 104_729));
        let mut xs = Vec::with_capacity(per_range);
        let mut ys = Vec::with_capacity(per_range);
        for _ in 0..per_range {
            let x = gx.sample(&mut r);
            let mut y = gy.sample(&mut r);
            match ri {
                // keep |y·ln x| below 700 so the result is finite and non-zero
                0 => y *= 700.0 / x.ln().abs().max(1e-300),
                2 => y = y.clamp(-700.0 / (x.ln().abs()), 700.0 / (x.ln().abs())),
                3 => y = y.round(),
                _ => {}
            }
            xs.push(x);
            ys.push(y);
        }
        let zs = eval2(&k, &xs, &ys);
        let mut row = Row {
            function: "powf",
            range,
            points: xs.len(),
            max_ulp: 0,
            worst_x: 0.0,
            worst_y: 0.0,
        };
        for i in 0..xs.len() {
            if let Some(d) = dump.as_deref_mut() {
                let _ = writeln!(
                    d,
                    "powf {ri} {:x} {:x} {:x}",
                    xs[i].to_bits(),
                    ys[i].to_bits(),
                    zs[i].to_bits()
                );
            }
            let u = ulp(zs[i], xs[i].powf(ys[i]));
            if u > row.max_ulp {
                row.max_ulp = u;
                row.worst_x = xs[i];
                row.worst_y = ys[i];
            }
        }
        rows.push(row);
    }
    rows
}

fn print_table(rows: &[Row]) {
    println!("| function | range | points | max ulp | worst input |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:e} ({:e}) |",
            r.function, r.range, r.points, r.max_ulp, r.worst_x, r.worst_y
        );
    }
}

#[test]
fn math_accuracy_within_2_ulp() {
    let rows = measure(3000, None);
    print_table(&rows);
    for r in &rows {
        assert!(
            r.max_ulp <= 2,
            "{} on {}: {} ulp at {:e}",
            r.function,
            r.range,
            r.max_ulp,
            r.worst_x
        );
    }
}

#[test]
#[ignore = "prints the accuracy table with more points (slow in the dev profile)"]
fn math_ulp_table() {
    // instructions per expansion (top-level region, plus the Payne–Hanek
    // `if` for the trig functions)
    fn count(r: &crux_ir::kernel::Region) -> usize {
        use crux_ir::kernel::InstKind;
        r.insts
            .iter()
            .map(|i| match &i.kind {
                InstKind::If { then, else_, .. } => 1 + count(then) + count(else_),
                InstKind::For { body, .. } => 1 + count(body),
                _ => 1,
            })
            .sum()
    }
    for fun in functions() {
        let mut b = Builder::new(fun.name);
        let x = b.param("x", Ty::F64);
        let y = (fun.f)(&mut b, x);
        let f = b.finish(&[y]).expect("valid kernel");
        println!("{}: {} instructions", fun.name, count(&f.body));
    }
    let mut b = Builder::new("powf");
    let x = b.param("x", Ty::F64);
    let y = b.param("y", Ty::F64);
    let z = powf(&mut b, x, y);
    let f = b.finish(&[z]).expect("valid kernel");
    println!("powf: {} instructions", count(&f.body));

    // CRUX_MATH_DUMP=path also writes every point for an offline oracle.
    let mut dump = std::env::var("CRUX_MATH_DUMP")
        .ok()
        .map(|p| (p, String::new()));
    let rows = measure(50_000, dump.as_mut().map(|(_, s)| s));
    print_table(&rows);
    if let Some((path, text)) = dump {
        std::fs::write(&path, text).expect("dump written");
    }
}

fn check_special(name: &str, x: f64, got: f64, want: f64) {
    if want.is_nan() || want.is_infinite() || want == 0.0 || !x.is_finite() || x == 0.0 {
        assert!(
            (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits(),
            "{name}({x:e}) = {got:e}, std gives {want:e}"
        );
    } else {
        assert!(
            ulp(got, want) <= 2,
            "{name}({x:e}) = {got:e}, std gives {want:e}"
        );
    }
}

#[test]
fn math_special_cases_match_std() {
    for fun in functions() {
        let k = kernel1(fun.name, fun.f);
        let mut xs = SPECIALS.to_vec();
        xs.extend([
            -1.5,
            1e300,
            -1e300,
            1e9,
            -1e9,
            710.0,
            -746.0,
            22.0,
            -22.0,
            37.0,
            -37.0,
            TRIG_CODY_WAITE_LIMIT,
            -TRIG_CODY_WAITE_LIMIT,
        ]);
        let ys = eval1(&k, &xs);
        for (&x, &y) in xs.iter().zip(&ys) {
            let want = (fun.reference)(x);
            check_special(fun.name, x, y, want);
        }
    }
}

/// Hard cases of argument reduction, checked against correctly rounded
/// values computed with mpmath at 3000 bits (glibc's `cos` is 8 ulp off on
/// the first one, so std is not the reference here).
#[test]
fn math_trig_hard_reductions() {
    // x = m·2^e: (m, e, sin bits, cos bits, tan bits)
    let cases: [(f64, i32, u64, u64, u64); 4] = [
        // the double nearest a multiple of π/2 (remainder ≈ 2⁻⁶¹)
        (
            6381956970095103.0,
            797,
            0x3ff0000000000000,
            0xbc214ae72e6ba22f,
            0xc3bd9ba9a7975636,
        ),
        (
            -6381956970095103.0,
            797,
            0xbff0000000000000,
            0xbc214ae72e6ba22f,
            0x43bd9ba9a7975636,
        ),
        (
            5436085071065757.0,
            -30,
            0x3fb2d8253b6b9421,
            0xbfefe9c68c99ca53,
            0xbfb2e544c73b5979,
        ),
        (
            8248251512623681.0,
            964,
            0xbfead17f71beb720,
            0x3fe17534c5d5ada9,
            0xbff8942fc677dc21,
        ),
    ];
    let xs: Vec<f64> = cases.iter().map(|c| c.0 * 2f64.powi(c.1)).collect();
    let fs: [(&str, F1); 3] = [("sin", sin), ("cos", cos), ("tan", tan)];
    for (fi, (name, f)) in fs.iter().enumerate() {
        let ys = eval1(&kernel1(name, *f), &xs);
        for (c, y) in cases.iter().zip(ys) {
            let want = f64::from_bits([c.2, c.3, c.4][fi]);
            assert!(
                ulp(y, want) <= 1,
                "{name}({:e}) = {y:e}, correctly rounded {want:e}",
                c.0 * 2f64.powi(c.1)
            );
        }
    }
}

#[test]
fn math_powf_special_cases_match_std() {
    let vals = [
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        0.5,
        -0.5,
        1.0,
        -1.0,
        2.0,
        -2.0,
        3.0,
        -3.0,
        0.25,
        1.5,
        -1.5,
        1e300,
        -1e300,
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        9_007_199_254_740_993.0,
        1e20,
        -1e20,
        1075.0,
        -1075.0,
    ];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for &x in &vals {
        for &y in &vals {
            xs.push(x);
            ys.push(y);
        }
    }
    let k = kernel2("powf");
    let zs = eval2(&k, &xs, &ys);
    for i in 0..xs.len() {
        let want = xs[i].powf(ys[i]);
        let got = zs[i];
        let exact = want.is_nan() || want.is_infinite() || want == 0.0 || want == 1.0;
        if exact {
            assert!(
                (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits(),
                "powf({:e}, {:e}) = {got:e}, std gives {want:e}",
                xs[i],
                ys[i]
            );
        } else {
            assert!(
                ulp(got, want) <= 2,
                "powf({:e}, {:e}) = {got:e}, std gives {want:e}",
                xs[i],
                ys[i]
            );
        }
    }
}

#[test]
fn math_f32_dispatch() {
    let mut b = Builder::new("f32s");
    let x = b.param("x", Ty::F32);
    let outs = vec![
        exp(&mut b, x),
        log(&mut b, x),
        sin(&mut b, x),
        tanh(&mut b, x),
        sigmoid(&mut b, x),
        powf(&mut b, x, x),
        erf(&mut b, x),
        expm1(&mut b, x),
        log1p(&mut b, x),
        cos(&mut b, x),
        tan(&mut b, x),
        softplus(&mut b, x),
    ];
    let f = b.finish(&outs).expect("valid kernel");
    for x in [0.3f32, 1.7, 5.0, 20.0] {
        let got = run(&f, &[Scalar::F32(x)], &mut [], 1 << 20).expect("runs");
        let xd = x as f64;
        let want = [
            xd.exp(),
            xd.ln(),
            xd.sin(),
            xd.tanh(),
            1.0 / (1.0 + (-xd).exp()),
            xd.powf(xd),
            erf_ref(xd),
            xd.exp_m1(),
            xd.ln_1p(),
            xd.cos(),
            xd.tan(),
            softplus_ref(xd),
        ];
        for (g, w) in got.iter().zip(want) {
            let Scalar::F32(g) = *g else {
                panic!("f32 result")
            };
            let w = w as f32;
            let d = (g.to_bits() as i64 - w.to_bits() as i64).abs();
            assert!(d <= 1, "f32 at {x}: {g} vs {w}");
        }
    }
}

/// The expansions compiled by Cranelift compute the interpreter's results
/// bit for bit (NaN payloads aside).
#[test]
fn math_cranelift_matches_interpreter() {
    use crate::backend::{clif, Executable};
    let mut r = Rng(42);
    let mut xs: Vec<f64> = SPECIALS.to_vec();
    for _ in 0..400 {
        xs.push(r.logu(1e-310, 1e10, true));
        xs.push(r.logu(1e-310, 1e308, true));
        xs.push(r.lin(-800.0, 800.0));
    }
    let same = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    for fun in functions() {
        let k = kernel1(fun.name, fun.f);
        let want = eval1(&k, &xs);
        let jit = clif::compile(&k, &clif::ClifOptions::default()).expect("compiles");
        let mut bufs = vec![Buffer::F64(xs.clone()), Buffer::F64(vec![0.0; xs.len()])];
        jit.call(&[Scalar::I64(xs.len() as i64)], &mut bufs)
            .expect("runs");
        let Some(Buffer::F64(got)) = bufs.pop() else {
            unreachable!()
        };
        for i in 0..xs.len() {
            assert!(
                same(got[i], want[i]),
                "{}({:e}): cranelift {:e}, interpreter {:e}",
                fun.name,
                xs[i],
                got[i],
                want[i]
            );
        }
    }
    let k = kernel2("powf");
    let ys: Vec<f64> = xs.iter().rev().map(|y| y / 64.0).collect();
    let want = eval2(&k, &xs, &ys);
    let jit = clif::compile(&k, &clif::ClifOptions::default()).expect("compiles");
    let mut bufs = vec![
        Buffer::F64(xs.clone()),
        Buffer::F64(ys.clone()),
        Buffer::F64(vec![0.0; xs.len()]),
    ];
    jit.call(&[Scalar::I64(xs.len() as i64)], &mut bufs)
        .expect("runs");
    let Some(Buffer::F64(got)) = bufs.pop() else {
        unreachable!()
    };
    for i in 0..xs.len() {
        assert!(
            same(got[i], want[i]),
            "powf({:e}, {:e}): cranelift {:e}, interpreter {:e}",
            xs[i],
            ys[i],
            got[i],
            want[i]
        );
    }
}
