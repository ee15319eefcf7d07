//! Column alignment as Go's `text/tabwriter` does it with etcdctl's settings for its help
//! (`minwidth 0, tabwidth 8, padding 1, padchar '\t'`): tab-terminated cells line up in
//! columns, padded with tabs.
//!
//! A column is a run of consecutive lines that each have a tab-terminated cell at that index;
//! its width is the widest such cell plus the padding, rounded up to a multiple of the tab
//! width. The text after a line's last tab belongs to no column.

const TAB_WIDTH: usize = 8;
const PADDING: usize = 1;

/// Aligns `text` (lines ending in `\n`; the last may lack it).
pub fn align(text: &str) -> String {
    // Each line: its tab-terminated cells, then the trailing text.
    let mut lines: Vec<(Vec<&str>, &str)> = Vec::new();
    let ends_with_newline = text.ends_with('\n');
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.split('\n') {
        let mut parts: Vec<&str> = line.split('\t').collect();
        let last = parts.pop().unwrap_or("");
        lines.push((parts, last));
    }
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths: Vec<usize> = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    if !ends_with_newline {
        out.pop();
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Writes lines `[from, to)`, whose columns left of `widths.len()` have those widths, finding
/// the blocks of the next column to the right.
fn format(
    lines: &[(Vec<&str>, &str)],
    from: usize,
    to: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut written = from;
    let mut i = from;
    while i < to {
        if lines[i].0.len() <= column {
            i += 1;
            continue;
        }
        // Lines before this block have no cell in this column.
        write_lines(lines, written, i, widths, out);
        let start = i;
        let mut w = 0;
        while i < to && lines[i].0.len() > column {
            w = w.max(width(lines[i].0[column]) + PADDING);
            i += 1;
        }
        widths.push(w);
        format(lines, start, i, widths, out);
        widths.pop();
        written = i;
    }
    write_lines(lines, written, to, widths, out);
}

fn write_lines(
    lines: &[(Vec<&str>, &str)],
    from: usize,
    to: usize,
    widths: &[usize],
    out: &mut String,
) {
    for (cells, last) in &lines[from..to] {
        for (j, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if let Some(&w) = widths.get(j) {
                // Round the column up to whole tabs, then fill with tabs.
                let cellw = w.div_ceil(TAB_WIDTH) * TAB_WIDTH;
                let pad = cellw.saturating_sub(width(cell));
                for _ in 0..pad.div_ceil(TAB_WIDTH) {
                    out.push('\t');
                }
            }
        }
        out.push_str(last);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_go() {
        let text = "NAME:\n\tget - x\n\nOPTIONS:\n      --consistency=\"l\"\tLin\n  -h, --help[=false]\thelp\n      --print-value-only[=false]\tOnly\n";
        let want = "NAME:\n\tget - x\n\nOPTIONS:\n      --consistency=\"l\"\t\t\tLin\n  -h, --help[=false]\t\t\thelp\n      --print-value-only[=false]\tOnly\n";
        assert_eq!(align(text), want);
    }

    #[test]
    fn nested_columns() {
        // Column 0 is one block; column 1 exists only on the first two lines.
        let text = "\ta\tb\n\tlonger-than-eight\tc\n\tz\n";
        let want = "\ta\t\t\tb\n\tlonger-than-eight\tc\n\tz\n";
        assert_eq!(align(text), want);
    }
}
