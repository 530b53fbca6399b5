//! Test support shared by the graph and kernel text-format fuzzers: small
//! edits of a valid text (the parsers must answer them with an error or a
//! round-tripping result, never a panic).

/// Edit `kind % 4` of `text` at position `at`: delete a character,
/// duplicate a line, swap two adjacent lines, or replace a character by one
/// of `subst` (tokens of the format, so the edit is likely to parse).
pub(crate) fn mutate(text: &str, kind: u8, at: usize, subst: &[char]) -> String {
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
