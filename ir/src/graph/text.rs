//! Text format of the graph IR: [`print()`] and [`parse()`].
//!
//! The format is stable and line-oriented so that snapshot tests can diff
//! it, `crux compile` can dump it, and ahead-of-time artifacts can store it.
//! `parse(&print(g))` rebuilds a graph equal to `g` (bit for bit: floats are
//! written as the hex bit patterns of their f64 values, so NaN payloads and
//! `-0.0` survive), and printing that graph again gives the same string.
//!
//! ```text
//! param p0 "a" f64[1]
//! data d0 "interior.x" f64[3,1] = [0x0000000000000000, 0x3fe0000000000000, 0x3ff0000000000000]  # [0.0, 0.5, 1.0]
//! %0 = param p0 : f64[1]
//! %1 = data d0 : f64[3,1]
//! %2 = const 0x400921fb54442d18 : f64[3,1]  # 3.141592653589793
//! %3 = broadcast %0 : f64[3,1]
//! %4 = mul %2, %1 : f64[3,1]
//! %5 = sum{axes=[0,1]} %4 : f64[]
//! output "logp" = %5
//! ```
//!
//! Grammar (one item per line; `#` starts a comment outside strings; blank
//! lines are ignored; tokens may be separated by spaces):
//!
//! ```text
//! line    := param | data | node | output
//! param   := "param" p<N> STRING type
//! data    := "data" d<N> STRING type "runtime"? "=" "[" (HEX ("," HEX)*)? "]"
//! node    := %<N> "=" OPNAME attrs? operands ":" type
//! output  := "output" STRING "=" %<N>
//! type    := DTYPE "[" (INT ("," INT)*)? "]"          e.g. f64[3,1], f32[]
//! attrs   := "{" KEY "=" (INT | "[" INT,* "]") ("," ...)* "}"
//! operands:= p<N> (param) | d<N> (data) | HEX (const) | (%<N> ("," %<N>)*)?
//! HEX     := 0x followed by 1 to 16 hex digits (the f64 bit pattern)
//! STRING  := "..." with escapes \" \\ \n \r \t \u{HEX}
//! ```
//!
//! Ids are arena indices and must be sequential (`p0, p1, ...`,
//! `d0, d1, ...`, `%0, %1, ...`); nodes are rebuilt through [`Graph::add`],
//! so every type rule is checked and reported with its line number.
//! `runtime` after a data tensor's type marks a runtime input
//! ([`DataInfo::runtime`]); its values are the defaults.

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use super::interp::Tensor;
use super::op::{BinaryOp, CmpOp, Op, UnaryOp};
use super::types::{DType, DataId, NodeId, ParamId, Shape};
use super::{DataInfo, Graph, GraphError, Node};

/// Data tensors with at most this many elements get a decimal comment.
const DATA_COMMENT_MAX: usize = 8;

/// Prints `graph` in the text format: parameter declarations, data tensors,
/// nodes in arena order, then outputs.
pub fn print(graph: &Graph) -> String {
    Printer(graph).to_string()
}

/// Parses the text format back into a graph.
///
/// Syntax errors, references to undefined nodes, type errors, non-sequential
/// ids and duplicate nodes are reported as [`GraphError::Parse`] with the
/// 1-based line number. Never panics, whatever the input.
pub fn parse(text: &str) -> Result<Graph, GraphError> {
    let mut p = Parser {
        graph: Graph::new(),
        output_names: HashSet::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |msg: String| GraphError::Parse { line, msg };
        let toks = lex(raw).map_err(err)?;
        if toks.is_empty() {
            continue;
        }
        let mut c = Cursor { toks, pos: 0 };
        p.line(&mut c).map_err(err)?;
    }
    Ok(p.graph)
}

// ---------------------------------------------------------------- printing

struct Printer<'a>(&'a Graph);

impl fmt::Display for Printer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.0;
        for (i, p) in g.params().iter().enumerate() {
            writeln!(
                f,
                "param {} {} {}{}",
                ParamId(i as u32),
                Quoted(&p.name),
                p.dtype,
                p.shape
            )?;
        }
        for (i, d) in g.data().iter().enumerate() {
            let t = &d.value;
            write!(
                f,
                "data {} {} {}{}{} = [",
                DataId(i as u32),
                Quoted(&d.name),
                t.dtype,
                t.shape,
                if d.runtime { " runtime" } else { "" }
            )?;
            for (j, v) in t.data.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "0x{:016x}", v.to_bits())?;
            }
            f.write_char(']')?;
            if !t.data.is_empty() && t.data.len() <= DATA_COMMENT_MAX {
                f.write_str("  # [")?;
                for (j, v) in t.data.iter().enumerate() {
                    if j > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&decimal(t.dtype, *v))?;
                }
                f.write_char(']')?;
            }
            f.write_char('\n')?;
        }
        for (i, n) in g.nodes().iter().enumerate() {
            write!(f, "{} = {}", NodeId(i as u32), n.op.name())?;
            match &n.op {
                Op::Sum { axes } | Op::ReduceMax { axes } => write!(f, "{{axes={}}}", List(axes))?,
                Op::Transpose { perm } => write!(f, "{{perm={}}}", List(perm))?,
                Op::Slice { axis, start, step } | Op::Pad { axis, start, step } => {
                    write!(f, "{{axis={axis},start={start},step={step}}}")?
                }
                Op::Concat { axis } => write!(f, "{{axis={axis}}}")?,
                _ => {}
            }
            match &n.op {
                Op::Param(p) => write!(f, " {p}")?,
                Op::Data(d) => write!(f, " {d}")?,
                Op::Const(bits) => write!(f, " 0x{bits:016x}")?,
                _ => {
                    for (j, a) in n.args.iter().enumerate() {
                        f.write_str(if j == 0 { " " } else { ", " })?;
                        write!(f, "{a}")?;
                    }
                }
            }
            write!(f, " : {}{}", n.dtype, n.shape)?;
            if let Op::Const(bits) = n.op {
                write!(f, "  # {}", decimal(n.dtype, f64::from_bits(bits)))?;
            }
            f.write_char('\n')?;
        }
        for (name, id) in g.outputs() {
            writeln!(f, "output {} = {id}", Quoted(name))?;
        }
        Ok(())
    }
}

/// Shortest decimal that reads back as the value in its dtype (comments only).
fn decimal(dtype: DType, v: f64) -> String {
    if dtype == DType::F32 && !v.is_nan() {
        format!("{:?}", v as f32)
    } else {
        format!("{v:?}")
    }
}

/// `[0,1,2]`
struct List<'a>(&'a [u8]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('[')?;
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, "{a}")?;
        }
        f.write_char(']')
    }
}

/// A name in double quotes; escapes keep it on one line and unambiguous.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

// ------------------------------------------------------------------ lexing

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// Identifier or number: a run of `[A-Za-z0-9_]`.
    Word(String),
    /// `%` followed by a word: a node reference.
    Ref(String),
    /// A quoted string, unescaped.
    Str(String),
    /// One of `= : , [ ] { }`.
    Punct(char),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Ref(w) => write!(f, "`%{w}`"),
            Tok::Str(s) => write!(f, "string {}", Quoted(s)),
            Tok::Punct(c) => write!(f, "`{c}`"),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits one line into tokens, dropping a trailing comment.
fn lex(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut it = line.char_indices().peekable();
    while let Some(&(start, c)) = it.peek() {
        if c.is_whitespace() {
            it.next();
        } else if c == '#' {
            break;
        } else if matches!(c, '=' | ':' | ',' | '[' | ']' | '{' | '}') {
            it.next();
            toks.push(Tok::Punct(c));
        } else if c == '%' || is_word_char(c) {
            it.next();
            let from = if c == '%' { start + 1 } else { start };
            let mut end = if c == '%' { from } else { start + c.len_utf8() };
            while let Some(&(i, d)) = it.peek() {
                if !is_word_char(d) {
                    break;
                }
                end = i + d.len_utf8();
                it.next();
            }
            if c == '%' {
                if end == from {
                    return Err("expected a node number after `%`".into());
                }
                toks.push(Tok::Ref(line[from..end].to_string()));
            } else {
                toks.push(Tok::Word(line[from..end].to_string()));
            }
        } else if c == '"' {
            it.next();
            let mut s = String::new();
            loop {
                let Some((_, d)) = it.next() else {
                    return Err("unterminated string: expected a closing `\"`".into());
                };
                match d {
                    '"' => break,
                    '\\' => {
                        let Some((_, e)) = it.next() else {
                            return Err("unterminated escape at end of line".into());
                        };
                        match e {
                            '"' => s.push('"'),
                            '\\' => s.push('\\'),
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            'u' => {
                                if it.next().map(|x| x.1) != Some('{') {
                                    return Err("expected `{` after `\\u`".into());
                                }
                                let mut hex = String::new();
                                loop {
                                    match it.next() {
                                        Some((_, '}')) => break,
                                        Some((_, h)) if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                                        _ => return Err("expected 1 to 6 hex digits and `}` in `\\u{...}`".into()),
                                    }
                                }
                                let ch = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .and_then(char::from_u32)
                                    .ok_or_else(|| format!("`\\u{{{hex}}}` is not a character"))?;
                                s.push(ch);
                            }
                            other => {
                                return Err(format!(
                                    "unknown escape `\\{other}`: expected one of \\\" \\\\ \\n \\r \\t \\u{{...}}"
                                ))
                            }
                        }
                    }
                    d => s.push(d),
                }
            }
            toks.push(Tok::Str(s));
        } else {
            return Err(format!("unexpected character `{}`", c.escape_debug()));
        }
    }
    Ok(toks)
}

// ----------------------------------------------------------------- parsing

struct Cursor {
    toks: Vec<Tok>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    /// "expected X, found Y" for the next token.
    fn unexpected(&self, what: &str) -> String {
        match self.peek() {
            Some(t) => format!("expected {what}, found {t}"),
            None => format!("expected {what}, found end of line"),
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

    fn punct(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{c}`")))
        }
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn node_ref(&mut self, what: &str) -> Result<u32, String> {
        match self.peek() {
            Some(Tok::Ref(r)) => {
                let n = number::<u32>(r).ok_or_else(|| {
                    format!("malformed node reference `%{r}`: expected `%` and a number")
                })?;
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn end(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("end of line")),
        }
    }

    fn int(&mut self, what: &str) -> Result<usize, String> {
        let w = self.word(what)?;
        number(&w).ok_or_else(|| format!("malformed integer `{w}`: expected {what}"))
    }

    fn axis(&mut self, what: &str) -> Result<u8, String> {
        let n = self.int(what)?;
        u8::try_from(n).map_err(|_| format!("axis {n} out of range: expected at most 255"))
    }

    fn axis_list(&mut self, what: &str) -> Result<Vec<u8>, String> {
        self.punct('[')?;
        let mut out = Vec::new();
        if self.eat(']') {
            return Ok(out);
        }
        loop {
            out.push(self.axis(what)?);
            if self.eat(']') {
                return Ok(out);
            }
            if !self.eat(',') {
                return Err(self.unexpected("`,` or `]`"));
            }
        }
    }

    /// `f64[3,1]`: a dtype and a shape whose element count fits in `usize`.
    fn ty(&mut self) -> Result<(DType, Shape), String> {
        let w = self.word("a dtype (`f64`, `f32` or `bool`)")?;
        let dtype = DType::from_name(&w)
            .ok_or_else(|| format!("unknown dtype `{w}`: expected `f64`, `f32` or `bool`"))?;
        self.punct('[')?;
        let mut dims = Vec::new();
        if !self.eat(']') {
            loop {
                dims.push(self.int("a dimension")?);
                if self.eat(']') {
                    break;
                }
                if !self.eat(',') {
                    return Err(self.unexpected("`,` or `]` in the shape"));
                }
            }
        }
        if dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_none()
        {
            return Err("shape has too many elements".into());
        }
        Ok((dtype, Shape(dims)))
    }

    fn hex(&mut self, what: &str) -> Result<u64, String> {
        let w = self.word(what)?;
        hex_bits(&w).ok_or_else(|| format!("malformed bit pattern `{w}`: expected {what}"))
    }
}

/// A plain decimal number (digits only: no sign, no spaces).
fn number<T: std::str::FromStr>(w: &str) -> Option<T> {
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    w.parse().ok()
}

/// `0x` and 1 to 16 hex digits.
fn hex_bits(w: &str) -> Option<u64> {
    let h = w.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 16 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

/// `p3` -> 3 for prefix `p`.
fn prefixed_index(w: &str, prefix: char) -> Option<u32> {
    number(w.strip_prefix(prefix)?)
}

/// Looks an op name up; attribute-carrying ops get placeholder attributes.
fn op_from_name(name: &str) -> Option<Op> {
    Some(match name {
        "param" => Op::Param(ParamId(0)),
        "data" => Op::Data(DataId(0)),
        "const" => Op::Const(0),
        "select" => Op::Select,
        "cast" => Op::Cast,
        "sum" => Op::Sum { axes: Vec::new() },
        "reduce_max" => Op::ReduceMax { axes: Vec::new() },
        "broadcast" => Op::Broadcast,
        "reshape" => Op::Reshape,
        "transpose" => Op::Transpose { perm: Vec::new() },
        "slice" => Op::Slice {
            axis: 0,
            start: 0,
            step: 0,
        },
        "pad" => Op::Pad {
            axis: 0,
            start: 0,
            step: 0,
        },
        "concat" => Op::Concat { axis: 0 },
        "matmul" => Op::MatMul,
        _ => {
            if let Some(u) = UnaryOp::ALL.iter().find(|u| u.name() == name) {
                Op::Unary(*u)
            } else if let Some(b) = BinaryOp::ALL.iter().find(|b| b.name() == name) {
                Op::Binary(*b)
            } else {
                Op::Compare(*CmpOp::ALL.iter().find(|c| c.name() == name)?)
            }
        }
    })
}

/// Attribute values: `3` or `[0,1]`.
enum Attr {
    Int(usize),
    List(Vec<u8>),
}

/// Parsed `{key=value,...}`; each key must be taken exactly once.
struct Attrs(Vec<(String, Attr)>);

impl Attrs {
    fn parse(c: &mut Cursor) -> Result<Attrs, String> {
        let mut out: Vec<(String, Attr)> = Vec::new();
        if !c.eat('{') {
            return Ok(Attrs(out));
        }
        if c.eat('}') {
            return Ok(Attrs(out));
        }
        loop {
            let key = c.word("an attribute name")?;
            if out.iter().any(|(k, _)| *k == key) {
                return Err(format!("attribute `{key}` given twice"));
            }
            c.punct('=')?;
            let val = if c.peek() == Some(&Tok::Punct('[')) {
                Attr::List(c.axis_list("an axis")?)
            } else {
                Attr::Int(c.int("an integer attribute value")?)
            };
            out.push((key, val));
            if c.eat('}') {
                return Ok(Attrs(out));
            }
            if !c.eat(',') {
                return Err(c.unexpected("`,` or `}` in the attributes"));
            }
        }
    }

    fn take(&mut self, op: &str, key: &str) -> Result<Attr, String> {
        let i = self
            .0
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| format!("`{op}` expects attribute `{key}`"))?;
        Ok(self.0.remove(i).1)
    }

    fn int(&mut self, op: &str, key: &str) -> Result<usize, String> {
        match self.take(op, key)? {
            Attr::Int(n) => Ok(n),
            Attr::List(_) => Err(format!(
                "`{op}` attribute `{key}` expects an integer, not a list"
            )),
        }
    }

    fn axis(&mut self, op: &str, key: &str) -> Result<u8, String> {
        let n = self.int(op, key)?;
        u8::try_from(n).map_err(|_| format!("axis {n} out of range: expected at most 255"))
    }

    fn list(&mut self, op: &str, key: &str) -> Result<Vec<u8>, String> {
        match self.take(op, key)? {
            Attr::List(l) => Ok(l),
            Attr::Int(_) => Err(format!(
                "`{op}` attribute `{key}` expects a list like `[0,1]`"
            )),
        }
    }

    fn done(self, op: &str) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some((k, _)) => Err(format!("`{op}` has no attribute `{k}`")),
        }
    }
}

struct Parser {
    graph: Graph,
    output_names: HashSet<String>,
}

impl Parser {
    fn line(&mut self, c: &mut Cursor) -> Result<(), String> {
        match c.bump() {
            Some(Tok::Word(w)) if w == "param" => self.param(c),
            Some(Tok::Word(w)) if w == "data" => self.data(c),
            Some(Tok::Word(w)) if w == "output" => self.output(c),
            Some(Tok::Ref(r)) => self.node(c, &r),
            _ => {
                c.pos = 0;
                Err(c.unexpected("`param`, `data`, `output` or a node definition `%N = ...`"))
            }
        }
    }

    fn param(&mut self, c: &mut Cursor) -> Result<(), String> {
        let want = self.graph.params().len();
        let w = c.word(&format!("parameter id `p{want}`"))?;
        match prefixed_index(&w, 'p') {
            Some(i) if i as usize == want => {}
            _ => {
                return Err(format!(
                    "expected parameter id `p{want}`, found `{w}`: ids must be sequential"
                ))
            }
        }
        let name = c.string("a quoted parameter name")?;
        let (dtype, shape) = c.ty()?;
        c.end()?;
        self.graph.add_param(name, dtype, shape);
        Ok(())
    }

    fn data(&mut self, c: &mut Cursor) -> Result<(), String> {
        let want = self.graph.data().len();
        let w = c.word(&format!("data id `d{want}`"))?;
        match prefixed_index(&w, 'd') {
            Some(i) if i as usize == want => {}
            _ => {
                return Err(format!(
                    "expected data id `d{want}`, found `{w}`: ids must be sequential"
                ))
            }
        }
        let name = c.string("a quoted data name")?;
        let (dtype, shape) = c.ty()?;
        let runtime = matches!(c.peek(), Some(Tok::Word(w)) if w == "runtime");
        if runtime {
            c.pos += 1;
        }
        c.punct('=')?;
        c.punct('[')?;
        let mut values = Vec::new();
        if !c.eat(']') {
            loop {
                values.push(f64::from_bits(
                    c.hex("an element bit pattern like `0x3ff0000000000000`")?,
                ));
                if c.eat(']') {
                    break;
                }
                if !c.eat(',') {
                    return Err(c.unexpected("`,` or `]` in the data values"));
                }
            }
        }
        c.end()?;
        // `ty` checked that the element count does not overflow.
        let numel = shape.numel();
        if values.len() != numel {
            return Err(format!(
                "shape {shape} needs {numel} values, found {}",
                values.len()
            ));
        }
        // Built directly (not `Tensor::new`) so the bits are kept as written.
        self.graph.add_data_info(DataInfo {
            name,
            value: Tensor {
                dtype,
                shape,
                data: values,
            },
            runtime,
        });
        Ok(())
    }

    fn output(&mut self, c: &mut Cursor) -> Result<(), String> {
        let name = c.string("a quoted output name")?;
        c.punct('=')?;
        let n = c.node_ref("a node reference `%N`")?;
        c.end()?;
        if n as usize >= self.graph.len() {
            return Err(format!("output `{name}` refers to undefined node %{n}"));
        }
        if !self.output_names.insert(name.clone()) {
            return Err(format!("output `{name}` is defined twice"));
        }
        self.graph.set_output(name, NodeId(n));
        Ok(())
    }

    fn node(&mut self, c: &mut Cursor, id: &str) -> Result<(), String> {
        let want = self.graph.len();
        match number::<usize>(id) {
            Some(i) if i == want => {}
            Some(i) if i < want => {
                return Err(format!("node %{i} is already defined: expected %{want}"))
            }
            _ => {
                return Err(format!(
                    "expected node id %{want}, found `%{id}`: node ids must be sequential"
                ))
            }
        }
        c.punct('=')?;
        let name = c.word("an op name")?;
        let op = op_from_name(&name).ok_or_else(|| format!("unknown op `{name}`"))?;
        let mut attrs = Attrs::parse(c)?;
        let op = match op {
            Op::Sum { .. } => Op::Sum {
                axes: attrs.list(&name, "axes")?,
            },
            Op::ReduceMax { .. } => Op::ReduceMax {
                axes: attrs.list(&name, "axes")?,
            },
            Op::Transpose { .. } => Op::Transpose {
                perm: attrs.list(&name, "perm")?,
            },
            Op::Slice { .. } => Op::Slice {
                axis: attrs.axis(&name, "axis")?,
                start: attrs.int(&name, "start")?,
                step: attrs.int(&name, "step")?,
            },
            Op::Pad { .. } => Op::Pad {
                axis: attrs.axis(&name, "axis")?,
                start: attrs.int(&name, "start")?,
                step: attrs.int(&name, "step")?,
            },
            Op::Concat { .. } => Op::Concat {
                axis: attrs.axis(&name, "axis")?,
            },
            other => other,
        };
        attrs.done(&name)?;
        let mut args = Vec::new();
        let op = match op {
            Op::Param(_) => {
                let w = c.word("a parameter id `pN`")?;
                Op::Param(ParamId(prefixed_index(&w, 'p').ok_or_else(|| {
                    format!("expected a parameter id `pN`, found `{w}`")
                })?))
            }
            Op::Data(_) => {
                let w = c.word("a data id `dN`")?;
                Op::Data(DataId(prefixed_index(&w, 'd').ok_or_else(|| {
                    format!("expected a data id `dN`, found `{w}`")
                })?))
            }
            Op::Const(_) => Op::Const(c.hex("a constant bit pattern like `0x3ff0000000000000`")?),
            other => {
                if matches!(c.peek(), Some(Tok::Ref(_))) {
                    loop {
                        let a = c.node_ref("an argument `%N`")?;
                        if a as usize >= want {
                            return Err(format!(
                                "argument %{a} is not defined before node %{want}"
                            ));
                        }
                        args.push(NodeId(a));
                        if !c.eat(',') {
                            break;
                        }
                    }
                }
                other
            }
        };
        c.punct(':')?;
        let (dtype, shape) = c.ty()?;
        c.end()?;
        self.guard_index_overflow(&op, &args, &shape)?;
        let got = self
            .graph
            .add(Node {
                op,
                args,
                dtype,
                shape,
            })
            .map_err(|e| e.to_string())?;
        if got.index() != want {
            return Err(format!(
                "node %{want} is identical to {got}: nodes must be unique (the graph is hash-consed, so ids would shift)"
            ));
        }
        Ok(())
    }

    /// The slice/pad type rule computes `start + (n - 1) * step`; reject
    /// values where that overflows instead of letting it panic.
    fn guard_index_overflow(&self, op: &Op, args: &[NodeId], shape: &Shape) -> Result<(), String> {
        let (axis, start, step, small) = match op {
            Op::Slice { axis, start, step } => (*axis, *start, *step, Some(shape)),
            Op::Pad { axis, start, step } => (
                *axis,
                *start,
                *step,
                args.first().map(|a| &self.graph.node(*a).shape),
            ),
            _ => return Ok(()),
        };
        let n = small
            .and_then(|s| s.0.get(axis as usize))
            .copied()
            .unwrap_or(0);
        if n > 0
            && (n - 1)
                .checked_mul(step)
                .and_then(|x| x.checked_add(start))
                .is_none()
        {
            return Err(format!(
                "`{}` indices overflow: start {start}, step {step}, {n} elements",
                op.name()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::verify;
    use proptest::prelude::*;

    /// A graph using every op variant, every dtype, scalar shapes, special
    /// floats in constants and data, and names that need escaping.
    fn every_op_graph() -> Graph {
        let mut g = Graph::new();
        let p0 = g.add_param("a \"quoted\" \\ name\n#not a comment", DType::F64, [3]);
        let p1 = g.add_param("b", DType::F32, Shape::scalar());
        let special = vec![
            f64::NAN,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(0x7ff0_0000_0000_0001),
            0.5,
        ];
        let d0 = g.add_data("interior.x", Tensor::f64([2, 3], special).unwrap());
        let d1 = g.add_data(
            "big",
            Tensor::f64([20], (0..20).map(|i| i as f64 * 0.1).collect()).unwrap(),
        );
        let d2 = g.add_data(
            "f32 data",
            Tensor::new(DType::F32, [2], vec![0.1, -0.0]).unwrap(),
        );
        let d3 = g.add_data("empty", Tensor::f64([0, 2], vec![]).unwrap());
        let d4 = g.add_runtime_data("weights", Tensor::f64([3], vec![1.0, 0.0, 2.5]).unwrap());
        let x = g.param(p0).unwrap();
        let s = g.param(p1).unwrap();
        let m = g.data_node(d0).unwrap();
        let big = g.data_node(d1).unwrap();
        let f = g.data_node(d2).unwrap();
        let e = g.data_node(d3).unwrap();
        let w = g.data_node(d4).unwrap();
        let mut outs = vec![big, f, e, s, w];
        for bits in [
            f64::NAN.to_bits(),
            0x7ff8_dead_beef_0001,
            (-0.0f64).to_bits(),
            f64::INFINITY.to_bits(),
        ] {
            outs.push(
                g.add(Node {
                    op: Op::Const(bits),
                    args: vec![],
                    dtype: DType::F64,
                    shape: Shape::scalar(),
                })
                .unwrap(),
            );
        }
        outs.push(g.constant(0.1, DType::F32, [2]).unwrap());
        for u in UnaryOp::ALL {
            outs.push(g.unary(u, x).unwrap());
        }
        let y = g.constant(2.0, DType::F64, [3]).unwrap();
        for b in BinaryOp::ALL {
            outs.push(g.binary(b, x, y).unwrap());
        }
        let mut cond = x;
        for c in CmpOp::ALL {
            cond = g.compare(c, x, y).unwrap();
            outs.push(cond);
        }
        outs.push(g.select(cond, x, y).unwrap());
        outs.push(g.cast(x, DType::F32).unwrap());
        outs.push(g.sum(m, &[0, 1]).unwrap());
        outs.push(g.sum(m, &[1]).unwrap());
        outs.push(g.reduce_max(m, &[0]).unwrap());
        outs.push(g.broadcast(x, [2, 3]).unwrap());
        outs.push(g.reshape(m, [3, 2]).unwrap());
        let t = g.transpose(m, &[1, 0]).unwrap();
        outs.push(t);
        let sl = g.slice(m, 1, 0, 2, 2).unwrap();
        outs.push(sl);
        outs.push(g.pad(sl, 1, 1, 1, 4).unwrap());
        outs.push(g.concat(&[m, m, sl], 1).unwrap());
        outs.push(g.matmul(m, t).unwrap());
        for (i, o) in outs.into_iter().enumerate() {
            g.set_output(format!("out{i}"), o);
        }
        g.set_output("logp \"x\"\t\u{1}", x);
        g
    }

    #[test]
    fn text_round_trip_every_op() {
        let g = every_op_graph();
        verify(&g).unwrap();
        let s = print(&g);
        let h = parse(&s).unwrap_or_else(|e| panic!("{e}\n{s}"));
        assert_eq!(g, h);
        assert_eq!(s, print(&h));
        verify(&h).unwrap();
        // Every op variant occurs.
        let mut names: Vec<&str> = h.nodes().iter().map(|n| n.op.name()).collect();
        names.sort_unstable();
        names.dedup();
        let fixed = 14; // param data const select cast sum reduce_max broadcast reshape transpose slice pad concat matmul
        assert_eq!(
            names.len(),
            fixed + UnaryOp::ALL.len() + BinaryOp::ALL.len() + CmpOp::ALL.len()
        );
        // NaN payloads and -0.0 survive bit for bit.
        assert_eq!(h.data()[0].value.data[4].to_bits(), 0x7ff0_0000_0000_0001);
        assert_eq!(h.data()[0].value.data[1].to_bits(), (-0.0f64).to_bits());
        // The runtime flag survives, and only where it was set.
        let runtime: Vec<bool> = h.data().iter().map(|d| d.runtime).collect();
        assert_eq!(runtime, [false, false, false, false, true]);
        assert!(s.contains("data d4 \"weights\" f64[3] runtime = ["), "{s}");
    }

    #[test]
    fn text_op_names_are_unique() {
        let mut all: Vec<&str> = UnaryOp::ALL.iter().map(|u| u.name()).collect();
        all.extend(BinaryOp::ALL.iter().map(|b| b.name()));
        all.extend(CmpOp::ALL.iter().map(|c| c.name()));
        all.extend([
            "param",
            "data",
            "const",
            "select",
            "cast",
            "sum",
            "reduce_max",
            "broadcast",
            "reshape",
            "transpose",
            "slice",
            "pad",
            "concat",
            "matmul",
        ]);
        let n = all.len();
        for name in &all {
            assert_eq!(op_from_name(name).map(|o| o.name()), Some(*name));
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    const EXAMPLE: &str = "\
param p0 \"a\" f64[1]
data d0 \"interior.x\" f64[3,1] = [0x0000000000000000, 0x3fe0000000000000, 0x3ff0000000000000]  # [0.0, 0.5, 1.0]
%0 = param p0 : f64[1]
%1 = data d0 : f64[3,1]
%2 = const 0x400921fb54442d18 : f64[3,1]  # 3.141592653589793
%3 = broadcast %0 : f64[3,1]
%4 = mul %2, %1 : f64[3,1]
%5 = sum{axes=[0,1]} %4 : f64[]
%6 = slice{axis=0,start=1,step=2} %1 : f64[1,1]
output \"logp\" = %5
";

    #[test]
    fn text_golden_example() {
        let g = parse(EXAMPLE).unwrap();
        assert_eq!(print(&g), EXAMPLE);
        assert_eq!(g.len(), 7);
        assert_eq!(g.const_value(NodeId(2)), Some(std::f64::consts::PI));
        assert_eq!(g.output("logp").unwrap(), NodeId(5));
    }

    #[test]
    fn text_ignores_comments_blank_lines_and_spacing() {
        let text = "# header comment\n\n  param   p0 \"a#b\"   f64[ 1 ]  # trailing\r\n\
                    %0=param p0:f64[1]\n\t\n%1 = sum{ axes = [ 0 ] } %0 : f64[]\noutput \"o\"=%1 # done\n";
        let g = parse(text).unwrap();
        assert_eq!(g.params()[0].name, "a#b");
        assert_eq!(g.output("o").unwrap(), NodeId(1));
        assert_eq!(parse(&print(&g)).unwrap(), g);
    }

    #[test]
    fn text_empty_graph() {
        assert_eq!(print(&Graph::new()), "");
        assert_eq!(parse("").unwrap(), Graph::new());
        assert_eq!(parse("\n# nothing\n").unwrap(), Graph::new());
    }

    fn parse_err(text: &str) -> (usize, String) {
        match parse(text) {
            Err(GraphError::Parse { line, msg }) => (line, msg),
            other => panic!("expected a parse error for {text:?}, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_err(text: &str, line: usize, needle: &str) {
        let (l, msg) = parse_err(text);
        assert_eq!(l, line, "wrong line for {text:?}: {msg}");
        assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
    }

    const HEAD: &str = "param p0 \"a\" f64[2]\n%0 = param p0 : f64[2]\n";

    #[test]
    fn text_error_undefined_node() {
        assert_err(
            &format!("{HEAD}%1 = neg %3 : f64[2]\n"),
            3,
            "argument %3 is not defined",
        );
        assert_err(
            &format!("{HEAD}%1 = neg %1 : f64[2]\n"),
            3,
            "argument %1 is not defined",
        );
        assert_err(
            &format!("{HEAD}output \"o\" = %7\n"),
            3,
            "undefined node %7",
        );
        assert_err(
            "%0 = param p0 : f64[2]\n",
            1,
            "parameter p0 is not declared",
        );
        assert_err("%0 = data d4 : f64[2]\n", 1, "data d4 is not stored");
    }

    #[test]
    fn text_error_wrong_type() {
        assert_err(
            &format!("{HEAD}%1 = neg %0 : f64[3]\n"),
            3,
            "invalid `neg` node",
        );
        assert_err(
            &format!("{HEAD}%1 = add %0 : f64[2]\n"),
            3,
            "expected 2 arguments",
        );
        assert_err(&format!("{HEAD}%1 = lt %0, %0 : f64[2]\n"), 3, "bool");
        assert_err(
            "param p0 \"a\" f64[2]\n%0 = param p0 : f32[2]\n",
            2,
            "differs from parameter p0",
        );
        assert_err(
            &format!("{HEAD}%1 = sum{{axes=[1,0]}} %0 : f64[]\n"),
            3,
            "sorted",
        );
        assert_err(
            "%0 = const 0x3fb999999999999a : f32[]\n",
            1,
            "not representable in f32",
        );
    }

    #[test]
    fn text_error_ids() {
        assert_err(
            &format!("{HEAD}%2 = neg %0 : f64[2]\n"),
            3,
            "expected node id %1",
        );
        assert_err(
            &format!("{HEAD}%0 = neg %0 : f64[2]\n"),
            3,
            "already defined",
        );
        assert_err("param p1 \"a\" f64[2]\n", 1, "expected parameter id `p0`");
        assert_err("data x0 \"a\" f64[] = [0x0]\n", 1, "expected data id `d0`");
        assert_err(
            &format!("{HEAD}%1 = neg %0 : f64[2]\n%2 = neg %0 : f64[2]\n"),
            4,
            "nodes must be unique",
        );
        assert_err(
            &format!("{HEAD}output \"o\" = %0\noutput \"o\" = %0\n"),
            4,
            "defined twice",
        );
    }

    #[test]
    fn text_error_syntax() {
        assert_err("param p0 \"a\" f65[2]\n", 1, "unknown dtype `f65`");
        assert_err("param p0 \"a\" f64[2,x]\n", 1, "malformed integer `x`");
        assert_err("param p0 \"a\" f64[2\n", 1, "expected `,` or `]`");
        assert_err("param p0 a f64[2]\n", 1, "expected a quoted parameter name");
        assert_err("param p0 \"a f64[2]\n", 1, "unterminated string");
        assert_err("param p0 \"a\\q\" f64[2]\n", 1, "unknown escape");
        assert_err("param p0 \"a\" f64[2] extra\n", 1, "expected end of line");
        assert_err("\n\nbogus\n", 3, "expected `param`, `data`, `output`");
        assert_err(
            "%0 = const 0x1234567890abcdef0 : f64[]\n",
            1,
            "malformed bit pattern",
        );
        assert_err("%0 = const 0xzz : f64[]\n", 1, "malformed bit pattern");
        assert_err("%0 = const 1.5 : f64[]\n", 1, "unexpected character `.`");
        assert_err("%0 = frobnicate : f64[]\n", 1, "unknown op `frobnicate`");
        assert_err("%x = const 0x0 : f64[]\n", 1, "expected node id %0");
        assert_err(
            &format!("{HEAD}%1 = sum %0 : f64[]\n"),
            3,
            "expects attribute `axes`",
        );
        assert_err(
            &format!("{HEAD}%1 = sum{{axes=[0],step=1}} %0 : f64[]\n"),
            3,
            "no attribute `step`",
        );
        assert_err(
            &format!("{HEAD}%1 = neg{{axis=0}} %0 : f64[2]\n"),
            3,
            "no attribute `axis`",
        );
        assert_err(
            &format!("{HEAD}%1 = concat{{axis=256}} %0 : f64[2]\n"),
            3,
            "at most 255",
        );
        assert_err(
            "data d0 \"a\" f64[2] = [0x0]\n",
            1,
            "needs 2 values, found 1",
        );
        assert_err(
            "param p0 \"a\" f64[4294967296,4294967296,4294967296]\n",
            1,
            "too many elements",
        );
        assert_err(
            &format!("{HEAD}%1 = neg % : f64[2]\n"),
            3,
            "node number after `%`",
        );
    }

    #[test]
    fn text_error_index_overflow_does_not_panic() {
        let big = usize::MAX;
        assert_err(
            &format!("{HEAD}%1 = slice{{axis=0,start={big},step=1}} %0 : f64[2]\n"),
            3,
            "overflow",
        );
        assert_err(
            &format!("{HEAD}%1 = pad{{axis=0,start=1,step={big}}} %0 : f64[9]\n"),
            3,
            "overflow",
        );
    }

    use crate::text_fuzz::GRAPH_TOKENS as SUBST;

    /// If a text parses, the graph round-trips through the printer.
    fn check_parse(text: &str) {
        if let Ok(g) = parse(text) {
            let s = print(&g);
            assert_eq!(parse(&s).as_ref(), Ok(&g), "{s}");
        }
    }

    proptest! {
        #[test]
        fn text_parse_random_strings_never_panics(s in "\\PC*") {
            check_parse(&s);
        }

        #[test]
        fn text_parse_tokenish_strings_never_panics(
            s in "(%[0-9]{1,2}|param|data|output|const|sum|slice|pad|concat|neg|add|p0|d0|f64|f32|bool|0x[0-9a-f]{1,17}|[0-9]{1,20}|\"[a-z\\\\\"]{0,3}\"|[ =:,\\[\\]{}#\n])*"
        ) {
            check_parse(&s);
        }

        #[test]
        fn text_parse_mutations_never_panic(edits in proptest::collection::vec((any::<u8>(), any::<usize>()), 1..4)) {
            let mut text = print(&every_op_graph());
            for (kind, at) in edits {
                text = crate::text_fuzz::mutate(&text, kind, at, &SUBST);
            }
            check_parse(&text);
        }

        #[test]
        fn text_round_trip_random_bits(
            consts in proptest::collection::vec(any::<u64>(), 1..6),
            data in proptest::collection::vec(any::<u64>(), 0..10),
            name in "\\PC{0,8}",
        ) {
            let mut g = Graph::new();
            let n = data.len();
            let d = g.add_data(name.clone(), Tensor {
                dtype: DType::F64,
                shape: Shape(vec![n]),
                data: data.into_iter().map(f64::from_bits).collect(),
            });
            let dn = g.data_node(d).unwrap();
            let mut last = dn;
            for bits in consts {
                let c = g.add(Node { op: Op::Const(bits), args: vec![], dtype: DType::F64, shape: Shape(vec![n]) }).unwrap();
                last = g.add2(last, c).unwrap();
            }
            g.set_output(name, last);
            let s = print(&g);
            let h = parse(&s).unwrap();
            prop_assert_eq!(&g, &h);
            prop_assert_eq!(s, print(&h));
        }
    }
}
