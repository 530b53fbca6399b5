//! Test support shared by the graph and kernel text-format fuzzers (the
//! unit tests here, `crux-tests`' differential tests and the `fuzz/`
//! targets): small edits of a valid text, which the parsers must answer
//! with an error or a round-tripping result, never a panic.

/// Tokens of the graph text format, for character substitutions.
pub const GRAPH_TOKENS: [char; 15] = [
    '%', '0', '9', ',', '[', ']', '{', '}', '"', '\\', '#', ' ', 'x', '=', ':',
];

/// Tokens of the kernel text format, for character substitutions.
pub const KERNEL_TOKENS: [char; 19] = [
    'v', '0', '9', ',', '[', ']', '{', '}', '|', '(', ')', '"', '\\', '#', ' ', 'x', '=', ':', '\n',
];

/// Edit `kind % 4` of `text` at position `at`: delete a character,
/// duplicate a line, swap two adjacent lines, or replace a character by one
/// of `subst` (tokens of the format, so the edit is likely to parse).
pub fn mutate(text: &str, kind: u8, at: usize, subst: &[char]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let chars: Vec<char> = text.chars().collect();
    let i = at % chars.len().max(1);
    match kind % 4 {
        0 => chars
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect(),
        1 => {
            let i = at % lines.len().max(1);
            let mut out = lines.clone();
            if let Some(l) = lines.get(i) {
                out.insert(i, l);
            }
            out.join("\n")
        }
        2 => {
            let mut out = lines.clone();
            if out.len() > 1 {
                let i = at % (out.len() - 1);
                out.swap(i, i + 1);
            }
            out.join("\n")
        }
        _ => chars
            .iter()
            .enumerate()
            .map(|(j, c)| if j == i { subst[at % subst.len()] } else { *c })
            .collect(),
    }
}
