use proptest::prelude::*;

use super::{parse, print};
use crate::kernel::{Access, BinOp, Builder, CmpOp, Conv, Function, KernelError, Ty, UnOp};

/// A kernel using every instruction kind, every type, buffers, locals,
/// nested regions with carried values, and odd names.
fn every_construct() -> Function {
    let mut b = Builder::new("every_thing_2");
    let n = b.param("n", Ty::I64);
    let x = b.param("x \"quoted\"\n", Ty::F64);
    let y = b.param("", Ty::F32);
    let k = b.param("k", Ty::I32);
    let flag = b.param("flag", Ty::Bool);
    let bf = b.buffer("data", Ty::F64, Access::Read);
    let bo = b.buffer("out", Ty::F32, Access::Write);
    let bi = b.buffer("ints", Ty::I64, Access::ReadWrite);
    let bj = b.buffer("i32s", Ty::I32, Access::ReadWrite);
    let loc = b.local("scratch", Ty::F64, 4);
    let loc2 = b.local("idx", Ty::I32, 0);
    let zero = b.i64(0);
    let nan = b.constant(Ty::F64, 0x7ff8_0000_0000_1234);
    let mz = b.f64(-0.0);
    let sub = b.f64(f64::from_bits(1));
    let f32c = b.f32(f32::NEG_INFINITY);
    let i32c = b.i32(i32::MIN);
    let bc = b.bool(true);
    let mut vals = vec![];
    for op in UnOp::ALL {
        let a = match op {
            UnOp::Not => k,
            _ => x,
        };
        vals.push(b.unary(op, a));
    }
    for op in BinOp::ALL {
        let (p, q) = match op {
            BinOp::And | BinOp::Or | BinOp::Xor => (flag, bc),
            BinOp::Shl | BinOp::ShrU | BinOp::ShrS => (n, zero),
            _ => (x, nan),
        };
        vals.push(b.binary(op, p, q));
    }
    for op in CmpOp::ALL {
        vals.push(b.cmp(op, y, f32c));
    }
    let c = b.cmp(CmpOp::Lt, k, i32c);
    let s = b.select(c, mz, sub);
    vals.push(b.fma(x, s, nan));
    vals.push(b.fma(y, f32c, y));
    for conv in Conv::ALL {
        let a = match conv.types().0 {
            Ty::F64 => s,
            Ty::F32 => y,
            Ty::I64 => n,
            Ty::I32 => k,
            Ty::Bool => flag,
        };
        vals.push(b.conv(conv, a));
    }
    let l = b.load(bf, zero);
    let li = b.load(bi, zero);
    let lj = b.load(bj, zero);
    b.store(bo, zero, y);
    b.store(bi, zero, li);
    b.store(bj, zero, lj);
    b.local_store(loc, zero, l);
    let ll = b.local_load(loc, zero);
    let _ = loc2;
    let r = b.for_(zero, n, &[ll, k], |b, i, cv| {
        let t = b.local_load(loc, i);
        let a = b.add(cv[0], t);
        let inner = b.if_(
            flag,
            |b| {
                let w = b.while_(
                    &[i],
                    |b, p| b.lt(p[0], n),
                    |b, p| {
                        let one = b.i64(1);
                        vec![b.add(p[0], one)]
                    },
                );
                vec![w[0]]
            },
            |_| vec![i],
        );
        let _ = inner;
        vec![a, cv[1]]
    });
    b.for_(zero, zero, &[], |_, _, _| vec![]);
    b.if_(flag, |_| vec![], |_| vec![]);
    let mut ret = vec![r[0], r[1]];
    ret.extend(vals);
    b.finish(&ret).unwrap()
}

#[test]
fn text_round_trip_every_construct() {
    let f = every_construct();
    let s = print(&f);
    let g = parse(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
    assert_eq!(f, g);
    assert_eq!(print(&g), s);
}

#[test]
fn text_round_trip_philox_and_unused_values() {
    let mut b = Builder::new("draw");
    let seed = b.param("seed", Ty::I64);
    let u = b.uniform(seed, seed, seed);
    let f = b.finish(&[u]).unwrap();
    assert_eq!(parse(&print(&f)).unwrap(), f);
    // Values with a type and no definition survive as `unused`.
    let mut f = Builder::new("x").finish(&[]).unwrap();
    f.values = vec![Ty::F32, Ty::I64];
    let s = print(&f);
    assert!(s.contains("unused v0: f32"), "{s}");
    assert_eq!(parse(&s).unwrap(), f);
}

const GOLDEN: &str = "kernel sumsq(v0 \"n\": i64) {
  buffer buf0 \"x\": f64 read
  local loc0 \"tmp\": f32[4]
  v1: i64 = const i64 0x0000000000000000  # 0
  v2: f64 = const f64 0x0000000000000000  # 0.0
  v8: f64 = for v1 to v0 carry(v2) |v3: i64, v4: f64| {
    v5: f64 = load buf0[v3]
    v6: f64 = mul v5, v5
    v7: f64 = add v4, v6
    yield v7
  }
  return v8
}
";

#[test]
fn text_golden_example() {
    let mut b = Builder::new("sumsq");
    let n = b.param("n", Ty::I64);
    let x = b.buffer("x", Ty::F64, Access::Read);
    b.local("tmp", Ty::F32, 4);
    let zero = b.i64(0);
    let init = b.f64(0.0);
    let acc = b.for_(zero, n, &[init], |b, i, c| {
        let v = b.load(x, i);
        let sq = b.mul(v, v);
        vec![b.add(c[0], sq)]
    });
    let f = b.finish(&[acc[0]]).unwrap();
    assert_eq!(print(&f), GOLDEN);
    assert_eq!(parse(GOLDEN).unwrap(), f);
    // Layout and comments do not matter.
    let squashed = GOLDEN.replace('\n', " # c\n").replace("  ", " ");
    assert_eq!(parse(&squashed).unwrap(), f);
}

fn err_line(text: &str) -> (usize, String) {
    match parse(text) {
        Err(KernelError::Parse { line, msg }) => (line, msg),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn assert_err(text: &str, line: usize, needle: &str) {
    let (l, msg) = err_line(text);
    assert_eq!(l, line, "{msg}");
    assert!(msg.contains(needle), "`{msg}` does not contain `{needle}`");
}

#[test]
fn text_errors_carry_lines() {
    let g = |from: &str, to: &str| GOLDEN.replacen(from, to, 1);
    assert_err(
        &g("mul v5, v5", "mul v5, v9"),
        8,
        "v9 is used where it is not defined",
    );
    assert_err(&g("v7: f64 = add", "v7: f32 = add"), 9, "v7 should be f64");
    assert_err(&g("mul v5, v5", "mul v5, v0"), 8, "expected f64");
    assert_err(&g("v6: f64", "v5: f64"), 8, "defined twice");
    assert_err(&g("mul v5", "mull v5"), 8, "unknown instruction `mull`");
    assert_err(&g("mul v5, v5", "fma v5, v5"), 9, "expected `,`");
    assert_err(&g("mul v5, v5", "fma v5, v5, v0"), 8, "expected f64");
    assert_err(&g("mul v5, v5", "fma v5, v5, v9"), 8, "not defined");
    assert_err(&g("buf0[v3]", "buf1[v3]"), 7, "buf1 is not declared");
    assert_err(&g("yield v7", "yield v8"), 10, "not defined");
    assert_err(&g("yield v7\n", ""), 10, "expected an instruction");
    assert_err(&g("return v8\n}", "return v8\n"), 12, "`}`");
    assert_err(&g("0x0000000000000000  # 0.0", "0x1g"), 5, "bits");
    assert_err(&g("const i64", "const i32"), 4, "v1 should be i32");
    assert_err(&g("\"x\"", "\"x"), 2, "unterminated");
    assert_err(&g("v4: f64|", "v4: i64|"), 9, "expected i64");
    assert_err(&g("yield v7", "yield v3"), 6, "for body yields");
    assert_err(&g("v2: f64 =", "v99999: f64 ="), 5, "too large");
    assert_err(
        &g("  return v8", "  v12: i64 = const i64 0x0\n  return v8"),
        1,
        "v9 is never defined",
    );
    assert_err("", 1, "`kernel`");
    assert_err(&g("kernel sumsq", "kernel 9sumsq"), 1, "names");
    assert_err(&format!("{GOLDEN} x"), 14, "end of input");
}

#[test]
fn text_deep_nesting_is_an_error_not_a_crash() {
    let mut s = String::from("kernel k(v0 \"c\": bool) {\n");
    for _ in 0..10_000 {
        s.push_str("if v0 {\n");
    }
    let (_, msg) = err_line(&s);
    assert!(msg.contains("nested"), "{msg}");
}

use crate::text_fuzz::KERNEL_TOKENS as SUBST;

/// If a text parses, the function verifies and round-trips.
fn check_parse(text: &str) {
    if let Ok(f) = parse(text) {
        crate::kernel::verify(&f).unwrap();
        let s = print(&f);
        assert_eq!(parse(&s).as_ref(), Ok(&f), "{s}");
    } else if let Err(e) = parse(text) {
        assert!(matches!(e, KernelError::Parse { .. }), "{e:?}");
    }
}

proptest! {
    #[test]
    fn text_parse_random_strings_never_panics(s in "\\PC*") {
        check_parse(&s);
    }

    #[test]
    fn text_parse_tokenish_strings_never_panics(
        s in "(kernel|k|v[0-9]{1,2}|buf0|loc0|buffer|local|unused|for|to|carry|while|do|if|else|yield|return|const|add|fma|load|store|f64|i64|bool|read|0x[0-9a-f]{1,17}|[0-9]{1,20}|\"[a-z\\\\\"]{0,3}\"|[ =:,\\[\\](){}|#\n])*"
    ) {
        check_parse(&s);
    }

    #[test]
    fn text_parse_mutations_never_panic(edits in proptest::collection::vec((any::<u8>(), any::<usize>()), 1..4)) {
        let mut text = print(&every_construct());
        for (kind, at) in edits {
            text = crate::text_fuzz::mutate(&text, kind, at, &SUBST);
        }
        check_parse(&text);
    }

    #[test]
    fn text_round_trip_random_bits(
        f64s in proptest::collection::vec(any::<u64>(), 0..4),
        f32s in proptest::collection::vec(any::<u32>(), 0..4),
        name in "\\PC{0,8}",
    ) {
        let mut b = Builder::new("bits");
        let p = b.param(name.clone(), Ty::F64);
        b.buffer(name, Ty::F32, Access::Write);
        let mut acc = p;
        for bits in f64s {
            let c = b.constant(Ty::F64, bits);
            acc = b.add(acc, c);
        }
        let mut acc32 = b.conv(Conv::F64ToF32, acc);
        for bits in f32s {
            let c = b.constant(Ty::F32, bits as u64);
            acc32 = b.mul(acc32, c);
        }
        let f = b.finish(&[acc, acc32]).unwrap();
        let s = print(&f);
        let g = parse(&s).unwrap();
        prop_assert_eq!(&f, &g);
        prop_assert_eq!(s, print(&g));
    }
}

const FMA_GOLDEN: &str = "kernel fused(v0 \"a\": f64, v1 \"b\": f32) {
  v2: f64 = fma v0, v0, v0
  v3: f32 = fma v1, v1, v1
  return v2, v3
}
";

#[test]
fn text_fma_golden_and_type_errors() {
    let mut b = Builder::new("fused");
    let a = b.param("a", Ty::F64);
    let c = b.param("b", Ty::F32);
    let r = b.fma(a, a, a);
    let s = b.fma(c, c, c);
    let f = b.finish(&[r, s]).unwrap();
    assert_eq!(print(&f), FMA_GOLDEN);
    assert_eq!(parse(FMA_GOLDEN).unwrap(), f);
    let g = |from: &str, to: &str| FMA_GOLDEN.replacen(from, to, 1);
    assert_err(&g("fma v0, v0, v0", "fma v0, v1, v0"), 2, "expected f64");
    assert_err(&g("fma v1, v1, v1", "fma v1, v1, v0"), 3, "expected f32");
    assert_err(&g("v2: f64 = fma", "v2: f32 = fma"), 2, "v2 should be f64");
    assert_err(
        &g("f64, v1", "i64, v1").replace("v2: f64", "v2: i64"),
        2,
        "fma does not apply to i64",
    );
}
