//! Text format of the kernel IR: [`print()`] and [`parse()`].
//!
//! Indented and structured: regions are nested in braces, their parameters
//! (with types) and yielded values are written out, every defined value has
//! its type, and constants are written by their bits in hex with a decimal
//! comment. `parse(&print(f)) == f` for every verified `f` (value numbers,
//! declaration order and NaN payloads included), and printing the parsed
//! function gives the same string.
//!
//! ```text
//! kernel sumsq(v0 "n": i64) {
//!   buffer buf0 "x": f64 read
//!   local loc0 "tmp": f64[4]
//!   v1: i64 = const i64 0x0000000000000000  # 0
//!   v2: f64 = const f64 0x0000000000000000  # 0.0
//!   v8: f64 = for v1 to v0 carry(v2) |v3: i64, v4: f64| {
//!     v5: f64 = load buf0[v3]
//!     v6: f64 = mul v5, v5
//!     v7: f64 = add v4, v6
//!     yield v7
//!   }
//!   return v8
//! }
//! ```
//!
//! Grammar (tokens may be separated by any whitespace, line breaks included;
//! `#` starts a comment to the end of the line):
//!
//! ```text
//! kernel  := "kernel" NAME "(" (VAL STRING ":" TY),* ")" "{" decl* inst* "return" VAL,* "}"
//! decl    := "buffer" buf<N> STRING ":" TY ("read" | "write" | "readwrite")
//!          | "local" loc<N> STRING ":" TY "[" INT "]"
//!          | "unused" VAL ":" TY             (a value with a type but no definition)
//! inst    := ((VAL ":" TY),+ "=")? op
//! op      := "const" TY HEX | UNOP VAL | BINOP VAL "," VAL | CMPOP VAL "," VAL
//!          | "select" VAL "," VAL "," VAL | "fma" VAL "," VAL "," VAL | CONV VAL
//!          | "load" (buf<N> | loc<N>) "[" VAL "]"
//!          | "store" (buf<N> | loc<N>) "[" VAL "]" "," VAL
//!          | "gemm" INT "x" INT "x" INT MAT "," MAT "to" MAT     (M x N x K: out = a · b)
//!          | "for" VAL "to" VAL "carry" "(" VAL,* ")" region
//!          | "while" "carry" "(" VAL,* ")" region "do" region
//!          | "if" VAL region "else" region
//! region  := ("|" (VAL ":" TY),* "|")? "{" inst* "yield" VAL,* "}"
//! MAT     := buf<N> "[" INT "," INT "," INT "]"   (offset, row stride, column stride)
//! VAL     := v<N>            TY := f64 | f32 | i64 | i32 | bool
//! HEX     := 0x and 1 to 16 hex digits          STRING := "..." (escapes \" \\ \n \r \t \u{..})
//! UNOP    := neg abs sqrt floor ceil trunc nearest not
//! BINOP   := add sub mul div min max copysign and or xor shl shr_u shr_s
//! CMPOP   := eq ne lt le gt ge
//! CONV    := f64_to_f32 f32_to_f64 f64_to_i64 i64_to_f64 i64_to_i32 i32_to_i64
//!            u32_to_i64 f64_bits bits_f64 bool_to_i64
//! ```
//!
//! Buffers and locals are numbered in declaration order (`buf0, buf1, ...`);
//! value numbers are the function's own, and every number below the largest
//! must be defined exactly once or declared `unused`. The parser checks
//! scoping and the type rules of every instruction as it reads it, so
//! errors carry the line they are on; it never panics, whatever the input.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::{
    verify, Access, BinOp, BufferDecl, BufferId, CmpOp, Conv, Function, Inst, InstKind,
    KernelError, LocalDecl, LocalId, MatRef, Region, Ty, UnOp, Value,
};

/// Deepest nesting of regions the parser accepts.
const MAX_DEPTH: usize = 200;

/// Prints `f` in the text format. Never panics, also on functions that do
/// not verify (those may not parse back).
pub fn print(f: &Function) -> String {
    let mut p = Printer {
        f,
        out: String::new(),
    };
    p.function();
    p.out
}

/// Parses the text format into a verified function. Errors are
/// [`KernelError::Parse`] with the 1-based line number.
pub fn parse(text: &str) -> Result<Function, KernelError> {
    let toks = lex(text)?;
    let last_line = text.lines().count().max(1);
    let mut p = Parser {
        toks,
        pos: 0,
        last_line,
        types: Vec::new(),
        defined: HashSet::new(),
        scopes: Vec::new(),
        visible: HashSet::new(),
        scratch: Function {
            name: "kernel".into(),
            values: Vec::new(),
            param_names: Vec::new(),
            buffers: Vec::new(),
            locals: Vec::new(),
            body: Region::default(),
        },
        depth: 0,
    };
    p.function()
}

// ---------------------------------------------------------------- names

fn unop_name(op: UnOp) -> &'static str {
    match op {
        UnOp::Neg => "neg",
        UnOp::Abs => "abs",
        UnOp::Sqrt => "sqrt",
        UnOp::Floor => "floor",
        UnOp::Ceil => "ceil",
        UnOp::Trunc => "trunc",
        UnOp::Nearest => "nearest",
        UnOp::Not => "not",
    }
}

fn binop_name(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "add",
        BinOp::Sub => "sub",
        BinOp::Mul => "mul",
        BinOp::Div => "div",
        BinOp::Min => "min",
        BinOp::Max => "max",
        BinOp::Copysign => "copysign",
        BinOp::And => "and",
        BinOp::Or => "or",
        BinOp::Xor => "xor",
        BinOp::Shl => "shl",
        BinOp::ShrU => "shr_u",
        BinOp::ShrS => "shr_s",
    }
}

fn cmp_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "eq",
        CmpOp::Ne => "ne",
        CmpOp::Lt => "lt",
        CmpOp::Le => "le",
        CmpOp::Gt => "gt",
        CmpOp::Ge => "ge",
    }
}

fn conv_name(c: Conv) -> &'static str {
    match c {
        Conv::F64ToF32 => "f64_to_f32",
        Conv::F32ToF64 => "f32_to_f64",
        Conv::F64ToI64 => "f64_to_i64",
        Conv::I64ToF64 => "i64_to_f64",
        Conv::I64ToI32 => "i64_to_i32",
        Conv::I32ToI64 => "i32_to_i64",
        Conv::U32ToI64 => "u32_to_i64",
        Conv::F64Bits => "f64_bits",
        Conv::BitsF64 => "bits_f64",
        Conv::BoolToI64 => "bool_to_i64",
    }
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Read => "read",
        Access::Write => "write",
        Access::ReadWrite => "readwrite",
    }
}

// ---------------------------------------------------------------- printing

struct Printer<'a> {
    f: &'a Function,
    out: String,
}

/// A name in double quotes; escapes keep it on one line and unambiguous.
fn quoted(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{{{:x}}}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Hex bits (16 digits for 64-bit types, 8 for 32-bit ones, 1 for bool) and
/// a decimal comment.
fn constant(ty: Ty, bits: u64) -> (String, String) {
    let hex = match ty {
        Ty::F64 | Ty::I64 => format!("0x{bits:016x}"),
        Ty::F32 | Ty::I32 if bits <= u32::MAX as u64 => format!("0x{bits:08x}"),
        Ty::Bool if bits <= 1 => format!("0x{bits:x}"),
        _ => format!("0x{bits:x}"),
    };
    let dec = match ty {
        Ty::F64 => format!("{:?}", f64::from_bits(bits)),
        Ty::F32 => format!("{:?}", f32::from_bits(bits as u32)),
        Ty::I64 => format!("{}", bits as i64),
        Ty::I32 => format!("{}", bits as u32 as i32),
        Ty::Bool => format!("{}", bits != 0),
    };
    (hex, dec)
}

impl Printer<'_> {
    fn ty(&self, v: Value) -> &'static str {
        self.f.values.get(v.index()).map_or("?", |t| t.name())
    }

    fn typed(&self, vs: &[Value]) -> String {
        vs.iter()
            .map(|v| format!("{v}: {}", self.ty(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn list(vs: &[Value]) -> String {
        vs.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    fn function(&mut self) {
        let f = self.f;
        let params = f
            .body
            .params
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let name = f.param_names.get(i).map_or("", String::as_str);
                format!("{v} {}: {}", quoted(name), self.ty(*v))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(self.out, "kernel {}({params}) {{", f.name);
        for (i, b) in f.buffers.iter().enumerate() {
            let _ = writeln!(
                self.out,
                "  buffer {} {}: {} {}",
                BufferId(i as u32),
                quoted(&b.name),
                b.ty,
                access_name(b.access)
            );
        }
        for (i, l) in f.locals.iter().enumerate() {
            let _ = writeln!(
                self.out,
                "  local {} {}: {}[{}]",
                LocalId(i as u32),
                quoted(&l.name),
                l.ty,
                l.len
            );
        }
        let mut defined = vec![false; f.values.len()];
        mark_defined(&f.body, &mut defined);
        for (i, d) in defined.iter().enumerate() {
            if !d {
                let _ = writeln!(self.out, "  unused v{i}: {}", f.values[i]);
            }
        }
        self.insts(&f.body.insts, 1);
        let _ = writeln!(self.out, "  return {}", Self::list(&f.body.yields));
        self.out.push_str("}\n");
    }

    fn insts(&mut self, insts: &[Inst], depth: usize) {
        for inst in insts {
            self.inst(inst, depth);
        }
    }

    /// `|params| {` insts `yield ..` `}` (the opening part continues the
    /// current line; the closing brace is left unterminated).
    fn region(&mut self, r: &Region, depth: usize) {
        if !r.params.is_empty() {
            let _ = write!(self.out, "|{}| ", self.typed(&r.params));
        }
        self.out.push_str("{\n");
        self.insts(&r.insts, depth + 1);
        self.indent(depth + 1);
        self.out.push_str("yield");
        if !r.yields.is_empty() {
            self.out.push(' ');
            self.out.push_str(&Self::list(&r.yields));
        }
        self.out.push('\n');
        self.indent(depth);
        self.out.push('}');
    }

    fn inst(&mut self, inst: &Inst, depth: usize) {
        self.indent(depth);
        if !inst.results.is_empty() {
            let r = self.typed(&inst.results);
            let _ = write!(self.out, "{r} = ");
        }
        match &inst.kind {
            InstKind::Const { ty, bits } => {
                let (hex, dec) = constant(*ty, *bits);
                let _ = write!(self.out, "const {ty} {hex}  # {dec}");
            }
            InstKind::Unary(op, a) => {
                let _ = write!(self.out, "{} {a}", unop_name(*op));
            }
            InstKind::Binary(op, a, b) => {
                let _ = write!(self.out, "{} {a}, {b}", binop_name(*op));
            }
            InstKind::Cmp(op, a, b) => {
                let _ = write!(self.out, "{} {a}, {b}", cmp_name(*op));
            }
            InstKind::Select(c, a, b) => {
                let _ = write!(self.out, "select {c}, {a}, {b}");
            }
            InstKind::Fma(a, b, c) => {
                let _ = write!(self.out, "fma {a}, {b}, {c}");
            }
            InstKind::Gemm { m, n, k, a, b, out } => {
                let v = |r: &MatRef| format!("{}[{}, {}, {}]", r.buf, r.off, r.rs, r.cs);
                let _ = write!(
                    self.out,
                    "gemm {m} x {n} x {k} {}, {} to {}",
                    v(a),
                    v(b),
                    v(out)
                );
            }
            InstKind::Conv(c, a) => {
                let _ = write!(self.out, "{} {a}", conv_name(*c));
            }
            InstKind::Load { buf, index } => {
                let _ = write!(self.out, "load {buf}[{index}]");
            }
            InstKind::Store { buf, index, value } => {
                let _ = write!(self.out, "store {buf}[{index}], {value}");
            }
            InstKind::LocalLoad { local, index } => {
                let _ = write!(self.out, "load {local}[{index}]");
            }
            InstKind::LocalStore {
                local,
                index,
                value,
            } => {
                let _ = write!(self.out, "store {local}[{index}], {value}");
            }
            InstKind::For { lo, hi, init, body } => {
                let _ = write!(self.out, "for {lo} to {hi} carry({}) ", Self::list(init));
                self.region(body, depth);
            }
            InstKind::While { init, cond, body } => {
                let _ = write!(self.out, "while carry({}) ", Self::list(init));
                self.region(cond, depth);
                self.out.push_str(" do ");
                self.region(body, depth);
            }
            InstKind::If { cond, then, else_ } => {
                let _ = write!(self.out, "if {cond} ");
                self.region(then, depth);
                self.out.push_str(" else ");
                self.region(else_, depth);
            }
        }
        self.out.push('\n');
    }
}

/// Marks every value a region defines (parameters and results, nested
/// regions included).
fn mark_defined(r: &Region, defined: &mut [bool]) {
    let mark = |v: &Value, defined: &mut [bool]| {
        if let Some(d) = defined.get_mut(v.index()) {
            *d = true;
        }
    };
    for p in &r.params {
        mark(p, defined);
    }
    for inst in &r.insts {
        for v in &inst.results {
            mark(v, defined);
        }
        for sub in regions(&inst.kind) {
            mark_defined(sub, defined);
        }
    }
}

fn regions(k: &InstKind) -> Vec<&Region> {
    match k {
        InstKind::For { body, .. } => vec![body],
        InstKind::While { cond, body, .. } => vec![cond, body],
        InstKind::If { then, else_, .. } => vec![then, else_],
        _ => vec![],
    }
}

// ------------------------------------------------------------------ lexing

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A run of `[A-Za-z0-9_]`.
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// One of `= : , ( ) { } [ ] |`.
    Punct(char),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Str(s) => write!(f, "string {}", quoted(s)),
            Tok::Punct(c) => write!(f, "`{c}`"),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Tokens with their 1-based line numbers.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, KernelError> {
    let mut toks = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        let err = |msg: String| KernelError::Parse { line: ln, msg };
        let mut it = line.char_indices().peekable();
        while let Some(&(start, c)) = it.peek() {
            if c.is_whitespace() {
                it.next();
            } else if c == '#' {
                break;
            } else if matches!(c, '=' | ':' | ',' | '(' | ')' | '{' | '}' | '[' | ']' | '|') {
                it.next();
                toks.push((Tok::Punct(c), ln));
            } else if is_word_char(c) {
                it.next();
                let mut end = start + c.len_utf8();
                while let Some(&(j, d)) = it.peek() {
                    if !is_word_char(d) {
                        break;
                    }
                    end = j + d.len_utf8();
                    it.next();
                }
                toks.push((Tok::Word(line[start..end].to_string()), ln));
            } else if c == '"' {
                it.next();
                let mut s = String::new();
                loop {
                    let Some((_, d)) = it.next() else {
                        return Err(err("unterminated string: expected a closing `\"`".into()));
                    };
                    match d {
                        '"' => break,
                        '\\' => {
                            let Some((_, e)) = it.next() else {
                                return Err(err("unterminated escape at end of line".into()));
                            };
                            match e {
                                '"' => s.push('"'),
                                '\\' => s.push('\\'),
                                'n' => s.push('\n'),
                                'r' => s.push('\r'),
                                't' => s.push('\t'),
                                'u' => {
                                    if it.next().map(|x| x.1) != Some('{') {
                                        return Err(err("expected `{` after `\\u`".into()));
                                    }
                                    let mut hex = String::new();
                                    loop {
                                        match it.next() {
                                            Some((_, '}')) => break,
                                            Some((_, h)) if h.is_ascii_hexdigit() && hex.len() < 6 => {
                                                hex.push(h)
                                            }
                                            _ => {
                                                return Err(err(
                                                    "expected 1 to 6 hex digits and `}` in `\\u{...}`"
                                                        .into(),
                                                ))
                                            }
                                        }
                                    }
                                    let ch = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| {
                                            err(format!("`\\u{{{hex}}}` is not a character"))
                                        })?;
                                    s.push(ch);
                                }
                                other => {
                                    return Err(err(format!(
                                        "unknown escape `\\{}`: expected one of \\\" \\\\ \\n \\r \\t \\u{{...}}",
                                        other.escape_debug()
                                    )))
                                }
                            }
                        }
                        d => s.push(d),
                    }
                }
                toks.push((Tok::Str(s), ln));
            } else {
                return Err(err(format!("unexpected character `{}`", c.escape_debug())));
            }
        }
    }
    Ok(toks)
}

// ----------------------------------------------------------------- parsing

/// A plain decimal number (digits only).
fn number<T: std::str::FromStr>(w: &str) -> Option<T> {
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    w.parse().ok()
}

fn prefixed(w: &str, prefix: &str) -> Option<u32> {
    w.strip_prefix(prefix).and_then(number)
}

/// `0x` and 1 to 16 hex digits.
fn hex_bits(w: &str) -> Option<u64> {
    let h = w.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 16 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

type R<T> = Result<T, KernelError>;

/// A memory reference: `buf<N>` or `loc<N>`.
enum Mem {
    Buf(BufferId),
    Loc(LocalId),
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    last_line: usize,
    /// Type of every value seen so far (by definition or `unused`).
    types: Vec<Option<Ty>>,
    defined: HashSet<Value>,
    /// Values visible at this point.
    scopes: Vec<Vec<Value>>,
    /// The union of `scopes`.
    visible: HashSet<Value>,
    /// Holds the declarations and value types; one instruction at a time
    /// is verified in it.
    scratch: Function,
    depth: usize,
}

impl Parser {
    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(self.last_line, |t| t.1)
    }

    fn err<T>(&self, msg: impl Into<String>) -> R<T> {
        Err(KernelError::Parse {
            line: self.line(),
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn unexpected<T>(&self, what: &str) -> R<T> {
        match self.peek() {
            Some(t) => self.err(format!("expected {what}, found {t}")),
            None => self.err(format!("expected {what}, found end of input")),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> R<()> {
        if self.eat(c) {
            Ok(())
        } else {
            self.unexpected(&format!("`{c}`"))
        }
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek_word() == Some(w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn keyword(&mut self, w: &str) -> R<()> {
        if self.eat_word(w) {
            Ok(())
        } else {
            self.unexpected(&format!("`{w}`"))
        }
    }

    fn word(&mut self, what: &str) -> R<String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => self.unexpected(what),
        }
    }

    fn string(&mut self, what: &str) -> R<String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => self.unexpected(what),
        }
    }

    fn ty(&mut self) -> R<Ty> {
        let what = "a type (`f64`, `f32`, `i64`, `i32` or `bool`)";
        match self.peek_word() {
            Some(w) => match Ty::ALL.iter().find(|t| t.name() == w) {
                Some(t) => {
                    self.pos += 1;
                    Ok(*t)
                }
                None => self.unexpected(what),
            },
            None => self.unexpected(what),
        }
    }

    /// A value number (not checked for scope).
    fn value_name(&mut self) -> R<Value> {
        let Some(w) = self.peek_word() else {
            return self.unexpected("a value (`v<N>`)");
        };
        let Some(n) = prefixed(w, "v") else {
            return self.unexpected("a value (`v<N>`)");
        };
        // Every number below the largest must be defined, each by at least
        // one token: larger numbers cannot be valid (and would make the
        // value table huge).
        if n as usize > self.toks.len() {
            return self.err(format!(
                "value number v{n} is too large: every value below it must be defined"
            ));
        }
        self.pos += 1;
        Ok(Value(n))
    }

    /// A use of a value: it must be visible here.
    fn use_value(&mut self) -> R<Value> {
        let v = self.value_name()?;
        if !self.visible.contains(&v) {
            self.pos -= 1;
            return self.err(format!("{v} is used where it is not defined"));
        }
        Ok(v)
    }

    /// Makes `v` visible in the innermost scope.
    fn bind(&mut self, v: Value) {
        if let Some(s) = self.scopes.last_mut() {
            s.push(v);
            self.visible.insert(v);
        }
    }

    fn close_scope(&mut self) {
        for v in self.scopes.pop().unwrap_or_default() {
            self.visible.remove(&v);
        }
    }

    fn set_type(&mut self, v: Value, ty: Ty) {
        if self.types.len() <= v.index() {
            self.types.resize(v.index() + 1, None);
        }
        self.types[v.index()] = Some(ty);
    }

    /// `vN: TY` defining a value in the innermost scope.
    fn define(&mut self) -> R<Value> {
        let v = self.value_name()?;
        if self.defined.contains(&v) {
            self.pos -= 1;
            return self.err(format!("{v} is defined twice"));
        }
        self.punct(':')?;
        let ty = self.ty()?;
        self.defined.insert(v);
        self.set_type(v, ty);
        self.bind(v);
        Ok(v)
    }

    /// `v1, v2, ...`: uses, possibly none (a list ends at the first token that
    /// is not a value).
    fn uses(&mut self) -> R<Vec<Value>> {
        let mut out = Vec::new();
        if !matches!(self.peek(), Some(Tok::Word(w)) if w.starts_with('v')) {
            return Ok(out);
        }
        loop {
            out.push(self.use_value()?);
            if !self.eat(',') {
                return Ok(out);
            }
        }
    }

    fn mem(&mut self) -> R<Mem> {
        let what = "a buffer (`buf<N>`) or a local (`loc<N>`)";
        let Some(w) = self.peek_word() else {
            return self.unexpected(what);
        };
        let m = if let Some(n) = prefixed(w, "buf") {
            if n as usize >= self.scratch.buffers.len() {
                return self.err(format!("buf{n} is not declared"));
            }
            Mem::Buf(BufferId(n))
        } else if let Some(n) = prefixed(w, "loc") {
            if n as usize >= self.scratch.locals.len() {
                return self.err(format!("loc{n} is not declared"));
            }
            Mem::Loc(LocalId(n))
        } else {
            return self.unexpected(what);
        };
        self.pos += 1;
        Ok(m)
    }

    fn function(&mut self) -> R<Function> {
        let start_line = self.line();
        self.keyword("kernel")?;
        let name = self.word("the kernel's name")?;
        self.scopes.push(Vec::new());
        self.punct('(')?;
        let mut params = Vec::new();
        let mut param_names = Vec::new();
        if !self.eat(')') {
            loop {
                let (v, pname) = self.define_named()?;
                params.push(v);
                param_names.push(pname);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return self.unexpected("`,` or `)`");
                }
            }
        }
        self.punct('{')?;
        self.scratch.name = if verify_name(&name) {
            name.clone()
        } else {
            "kernel".into()
        };
        // Declarations.
        loop {
            if self.eat_word("buffer") {
                let id = self.word("a buffer (`buf<N>`)")?;
                let n = self.scratch.buffers.len();
                if prefixed(&id, "buf") != Some(n as u32) {
                    self.pos -= 1;
                    return self.err(format!("expected buf{n} (buffers are numbered in order)"));
                }
                let bname = self.string("the buffer's name (a string)")?;
                self.punct(':')?;
                let ty = self.ty()?;
                let access = match self.peek_word() {
                    Some("read") => Access::Read,
                    Some("write") => Access::Write,
                    Some("readwrite") => Access::ReadWrite,
                    _ => return self.unexpected("`read`, `write` or `readwrite`"),
                };
                self.pos += 1;
                self.scratch.buffers.push(BufferDecl {
                    name: bname,
                    ty,
                    access,
                });
            } else if self.eat_word("local") {
                let id = self.word("a local (`loc<N>`)")?;
                let n = self.scratch.locals.len();
                if prefixed(&id, "loc") != Some(n as u32) {
                    self.pos -= 1;
                    return self.err(format!("expected loc{n} (locals are numbered in order)"));
                }
                let lname = self.string("the local's name (a string)")?;
                self.punct(':')?;
                let ty = self.ty()?;
                self.punct('[')?;
                let w = self.word("the local's length")?;
                let Some(len) = number::<usize>(&w) else {
                    self.pos -= 1;
                    return self.unexpected("the local's length (a number)");
                };
                self.punct(']')?;
                self.scratch.locals.push(LocalDecl {
                    name: lname,
                    ty,
                    len,
                });
            } else if self.eat_word("unused") {
                let v = self.value_name()?;
                if self.defined.contains(&v) {
                    self.pos -= 1;
                    return self.err(format!("{v} is declared twice"));
                }
                self.punct(':')?;
                let ty = self.ty()?;
                self.defined.insert(v);
                self.set_type(v, ty);
            } else {
                break;
            }
        }
        let insts = self.insts("return")?;
        let yields = self.uses()?;
        self.punct('}')?;
        if let Some(t) = self.peek() {
            return self.err(format!("expected end of input after the kernel, found {t}"));
        }
        self.close_scope();
        let mut values = Vec::with_capacity(self.types.len());
        for (i, t) in self.types.iter().enumerate() {
            match t {
                Some(t) => values.push(*t),
                None => {
                    return Err(KernelError::Parse {
                        line: start_line,
                        msg: format!("v{i} is never defined (declare it with `unused v{i}: TY`)"),
                    })
                }
            }
        }
        let f = Function {
            name,
            values,
            param_names,
            buffers: std::mem::take(&mut self.scratch.buffers),
            locals: std::mem::take(&mut self.scratch.locals),
            body: Region {
                params,
                insts,
                yields,
            },
        };
        verify(&f).map_err(|e| KernelError::Parse {
            line: start_line,
            msg: match e {
                KernelError::Invalid { msg, .. } => msg,
                other => other.to_string(),
            },
        })?;
        Ok(f)
    }

    /// `vN "name": TY` (a scalar parameter).
    fn define_named(&mut self) -> R<(Value, String)> {
        let v = self.value_name()?;
        if self.defined.contains(&v) {
            self.pos -= 1;
            return self.err(format!("{v} is defined twice"));
        }
        let name = self.string("the parameter's name (a string)")?;
        self.punct(':')?;
        let ty = self.ty()?;
        self.defined.insert(v);
        self.set_type(v, ty);
        self.bind(v);
        Ok((v, name))
    }

    /// Instructions up to the keyword `end` (`yield` or `return`), which is consumed.
    fn insts(&mut self, end: &str) -> R<Vec<Inst>> {
        let mut out = Vec::new();
        loop {
            if self.eat_word(end) {
                return Ok(out);
            }
            if self.peek().is_none() {
                return self.unexpected(&format!("an instruction or `{end}`"));
            }
            out.push(self.inst()?);
        }
    }

    /// `("|" params "|")? "{" inst* "yield" values "}"`
    fn region(&mut self) -> R<Region> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!("regions nested deeper than {MAX_DEPTH}"));
        }
        self.depth += 1;
        self.scopes.push(Vec::new());
        let mut params = Vec::new();
        if self.eat('|') && !self.eat('|') {
            loop {
                params.push(self.define()?);
                if self.eat('|') {
                    break;
                }
                if !self.eat(',') {
                    return self.unexpected("`,` or `|`");
                }
            }
        }
        self.punct('{')?;
        let insts = self.insts("yield")?;
        let yields = self.uses()?;
        self.punct('}')?;
        self.close_scope();
        self.depth -= 1;
        Ok(Region {
            params,
            insts,
            yields,
        })
    }

    fn inst(&mut self) -> R<Inst> {
        let line = self.line();
        // Results, if the instruction starts with `vN :`.
        let mut result_decls: Vec<(Value, Ty)> = Vec::new();
        if matches!(self.peek(), Some(Tok::Word(w)) if w.starts_with('v') && prefixed(w, "v").is_some())
        {
            loop {
                let v = self.value_name()?;
                if self.defined.contains(&v) || result_decls.iter().any(|(r, _)| *r == v) {
                    self.pos -= 1;
                    return self.err(format!("{v} is defined twice"));
                }
                self.punct(':')?;
                let ty = self.ty()?;
                result_decls.push((v, ty));
                if self.eat('=') {
                    break;
                }
                if !self.eat(',') {
                    return self.unexpected("`,` or `=`");
                }
            }
        }
        let op = self.word("an instruction")?;
        let kind = match op.as_str() {
            "const" => {
                let ty = self.ty()?;
                let w = self.word("the constant's bits (`0x...`)")?;
                let Some(bits) = hex_bits(&w) else {
                    self.pos -= 1;
                    return self.unexpected("the constant's bits (`0x` and 1 to 16 hex digits)");
                };
                InstKind::Const { ty, bits }
            }
            "select" => {
                let c = self.use_value()?;
                self.punct(',')?;
                let a = self.use_value()?;
                self.punct(',')?;
                let b = self.use_value()?;
                InstKind::Select(c, a, b)
            }
            "fma" => {
                let a = self.use_value()?;
                self.punct(',')?;
                let b = self.use_value()?;
                self.punct(',')?;
                let c = self.use_value()?;
                InstKind::Fma(a, b, c)
            }
            "gemm" => {
                let m = self.count("M")?;
                self.keyword("x")?;
                let n = self.count("N")?;
                self.keyword("x")?;
                let k = self.count("K")?;
                let a = self.mat_ref()?;
                self.punct(',')?;
                let b = self.mat_ref()?;
                self.keyword("to")?;
                let out = self.mat_ref()?;
                InstKind::Gemm { m, n, k, a, b, out }
            }
            "load" => {
                let m = self.mem()?;
                self.punct('[')?;
                let index = self.use_value()?;
                self.punct(']')?;
                match m {
                    Mem::Buf(buf) => InstKind::Load { buf, index },
                    Mem::Loc(local) => InstKind::LocalLoad { local, index },
                }
            }
            "store" => {
                let m = self.mem()?;
                self.punct('[')?;
                let index = self.use_value()?;
                self.punct(']')?;
                self.punct(',')?;
                let value = self.use_value()?;
                match m {
                    Mem::Buf(buf) => InstKind::Store { buf, index, value },
                    Mem::Loc(local) => InstKind::LocalStore {
                        local,
                        index,
                        value,
                    },
                }
            }
            "for" => {
                let lo = self.use_value()?;
                self.keyword("to")?;
                let hi = self.use_value()?;
                let init = self.carry()?;
                let body = self.region()?;
                InstKind::For { lo, hi, init, body }
            }
            "while" => {
                let init = self.carry()?;
                let cond = self.region()?;
                self.keyword("do")?;
                let body = self.region()?;
                InstKind::While { init, cond, body }
            }
            "if" => {
                let cond = self.use_value()?;
                let then = self.region()?;
                self.keyword("else")?;
                let else_ = self.region()?;
                InstKind::If { cond, then, else_ }
            }
            w => {
                if let Some(op) = UnOp::ALL.iter().find(|o| unop_name(**o) == w) {
                    InstKind::Unary(*op, self.use_value()?)
                } else if let Some(op) = BinOp::ALL.iter().find(|o| binop_name(**o) == w) {
                    let a = self.use_value()?;
                    self.punct(',')?;
                    InstKind::Binary(*op, a, self.use_value()?)
                } else if let Some(op) = CmpOp::ALL.iter().find(|o| cmp_name(**o) == w) {
                    let a = self.use_value()?;
                    self.punct(',')?;
                    InstKind::Cmp(*op, a, self.use_value()?)
                } else if let Some(c) = Conv::ALL.iter().find(|o| conv_name(**o) == w) {
                    InstKind::Conv(*c, self.use_value()?)
                } else {
                    self.pos -= 1;
                    return self.err(format!("unknown instruction `{w}`"));
                }
            }
        };
        for (v, ty) in &result_decls {
            self.defined.insert(*v);
            self.set_type(*v, *ty);
            self.bind(*v);
        }
        let inst = Inst {
            results: result_decls.iter().map(|r| r.0).collect(),
            kind,
        };
        self.check(&inst, line)?;
        Ok(inst)
    }

    /// A decimal number (a gemm dimension, offset or stride).
    fn count(&mut self, what: &str) -> R<u64> {
        let w = self.word(what)?;
        match number::<u64>(&w) {
            Some(x) => Ok(x),
            None => {
                self.pos -= 1;
                self.unexpected(&format!("{what} (a decimal number)"))
            }
        }
    }

    /// `buf<N>[off, rs, cs]`: a matrix view.
    fn mat_ref(&mut self) -> R<MatRef> {
        let Mem::Buf(buf) = self.mem()? else {
            self.pos -= 1;
            return self.unexpected("a buffer (`buf<N>`): gemm operands are buffers");
        };
        self.punct('[')?;
        let off = self.count("the offset")?;
        self.punct(',')?;
        let rs = self.count("the row stride")?;
        self.punct(',')?;
        let cs = self.count("the column stride")?;
        self.punct(']')?;
        Ok(MatRef { buf, off, rs, cs })
    }

    /// `carry(v1, v2, ...)`
    fn carry(&mut self) -> R<Vec<Value>> {
        self.keyword("carry")?;
        self.punct('(')?;
        let vs = self.uses()?;
        self.punct(')')?;
        Ok(vs)
    }

    /// Verifies one instruction on its own: its nested regions (already
    /// checked instruction by instruction) are emptied, and the values it
    /// reads become parameters of a one-instruction function.
    fn check(&mut self, inst: &Inst, line: usize) -> R<()> {
        let mut shallow = inst.clone();
        let mut inner: HashSet<Value> = HashSet::new();
        let mut free: Vec<Value> = Vec::new();
        {
            let mut read = |v: Value| {
                if !free.contains(&v) {
                    free.push(v);
                }
            };
            match &mut shallow.kind {
                InstKind::Const { .. } | InstKind::Gemm { .. } => {}
                InstKind::Unary(_, a) | InstKind::Conv(_, a) => read(*a),
                InstKind::Binary(_, a, b) | InstKind::Cmp(_, a, b) => {
                    read(*a);
                    read(*b);
                }
                InstKind::Select(a, b, c) | InstKind::Fma(a, b, c) => {
                    read(*a);
                    read(*b);
                    read(*c);
                }
                InstKind::Load { index, .. } | InstKind::LocalLoad { index, .. } => read(*index),
                InstKind::Store { index, value, .. }
                | InstKind::LocalStore { index, value, .. } => {
                    read(*index);
                    read(*value);
                }
                InstKind::For { lo, hi, init, body } => {
                    read(*lo);
                    read(*hi);
                    init.iter().for_each(|v| read(*v));
                    body.insts.clear();
                    inner.extend(&body.params);
                    body.yields.iter().for_each(|v| read(*v));
                }
                InstKind::While { init, cond, body } => {
                    init.iter().for_each(|v| read(*v));
                    for r in [cond, body] {
                        r.insts.clear();
                        inner.extend(&r.params);
                        r.yields.iter().for_each(|v| read(*v));
                    }
                }
                InstKind::If { cond, then, else_ } => {
                    read(*cond);
                    for r in [then, else_] {
                        r.insts.clear();
                        inner.extend(&r.params);
                        r.yields.iter().for_each(|v| read(*v));
                    }
                }
            }
        }
        // A yielded region parameter is bound by the region, not read outside.
        // (Parameters of different regions are distinct values.)
        free.retain(|v| !inner.contains(v));
        let values = &mut self.scratch.values;
        let top = free
            .iter()
            .chain(&inst.results)
            .chain(inner.iter())
            .map(|v| v.index() + 1)
            .max()
            .unwrap_or(0);
        if values.len() < top {
            values.resize(top, Ty::Bool);
        }
        for v in free.iter().chain(&inst.results).chain(inner.iter()) {
            if let Some(Some(t)) = self.types.get(v.index()) {
                values[v.index()] = *t;
            }
        }
        self.scratch.param_names = vec![String::new(); free.len()];
        self.scratch.body = Region {
            params: free,
            insts: vec![shallow],
            yields: Vec::new(),
        };
        let res = verify(&self.scratch);
        self.scratch.body = Region::default();
        res.map_err(|e| KernelError::Parse {
            line,
            msg: match e {
                KernelError::Invalid { msg, .. } => msg,
                other => other.to_string(),
            },
        })
    }
}

fn verify_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests;
