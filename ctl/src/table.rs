//! The boxed tables of `-w table`, as etcdctl draws them with olekukonko/tablewriter (0.0.5,
//! Debian's): a centered, upper-cased header, right-aligned cells, and cells wider than 30
//! columns wrapped at spaces with the fewest ragged lines.

const MAX_WIDTH: usize = 30;
const PENALTY: i64 = 100_000;

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Splits `s` into lines of at most `lim` columns where spaces allow (a longer word gets a
/// line of its own), minimizing the squares of the leftover space.
fn wrap(s: &str, lim: usize) -> Vec<String> {
    let replaced = s.replace('\n', " ");
    let words: Vec<&str> = replaced.split(' ').collect();
    let lim = words.iter().map(|w| width(w)).max().unwrap_or(0).max(lim) as i64;
    let n = words.len();
    // length[i][j]: the words i..=j joined by single spaces.
    let mut length = vec![vec![0i64; n]; n];
    for i in 0..n {
        length[i][i] = width(words[i]) as i64;
        for j in i + 1..n {
            length[i][j] = length[i][j - 1] + 1 + width(words[j]) as i64;
        }
    }
    let mut next_break = vec![0usize; n];
    let mut cost = vec![i64::from(i32::MAX); n];
    for i in (0..n).rev() {
        if length[i][n - 1] <= lim {
            cost[i] = 0;
            next_break[i] = n;
            continue;
        }
        for j in i + 1..n {
            let d = lim - length[i][j - 1];
            let mut c = d * d + cost[j];
            if length[i][j - 1] > lim {
                c += PENALTY;
            }
            if c < cost[i] {
                cost[i] = c;
                next_break[i] = j;
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        let j = next_break[i].max(i + 1);
        lines.push(words[i..j].join(" "));
        i = j;
    }
    lines
}

/// A cell's lines, and the width it asks of its column.
fn dimension(s: &str) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let paragraphs: Vec<&str> = s.split('\n').collect();
    let max = paragraphs.iter().map(|p| width(p)).max().unwrap_or(0);
    let lim = max.min(MAX_WIDTH);
    let mut new_max = lim;
    for (i, p) in paragraphs.iter().enumerate() {
        let lines = wrap(p, lim);
        for l in &lines {
            new_max = new_max.max(width(l));
        }
        if i > 0 {
            out.push(" ".to_string());
        }
        out.extend(lines);
    }
    (out, new_max)
}

/// tablewriter's `Title`: underscores (and dots not between digits) become spaces, upper case.
fn title(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let num_or_space = |c: char| c.is_ascii_digit() || c == ' ';
    let mapped: String = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| match c {
            '_' => ' ',
            '.' if (i != 0 && !num_or_space(chars[i - 1]))
                || (i + 1 != chars.len() && !num_or_space(chars[i + 1])) =>
            {
                ' '
            }
            c => c,
        })
        .collect();
    let trimmed = mapped.trim();
    if trimmed.is_empty() && !name.is_empty() {
        return " ".into();
    }
    trimmed.to_uppercase()
}

fn pad_center(s: &str, w: usize) -> String {
    let gap = w.saturating_sub(width(s));
    let left = gap / 2;
    format!("{}{s}{}", " ".repeat(left), " ".repeat(gap - left))
}

fn pad_left(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

/// Renders a table with `header` and right-aligned `rows`.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let ncols = header.len();
    let mut widths = vec![0usize; ncols];
    let mut head_cells = Vec::new();
    for (i, h) in header.iter().enumerate() {
        let (lines, w) = dimension(h);
        widths[i] = widths[i].max(w);
        head_cells.push(lines);
    }
    let mut body: Vec<Vec<Vec<String>>> = Vec::new();
    for row in rows {
        let mut cells = Vec::new();
        for (i, v) in row.iter().enumerate() {
            let (lines, w) = dimension(v);
            if i < ncols {
                widths[i] = widths[i].max(w);
            }
            cells.push(lines);
        }
        body.push(cells);
    }
    let mut out = String::new();
    let line = {
        let mut l = String::from("+");
        for w in &widths {
            l.push_str(&"-".repeat(w + 2));
            l.push('+');
        }
        l.push('\n');
        l
    };
    out.push_str(&line);
    let head_height = head_cells.iter().map(Vec::len).max().unwrap_or(0);
    for x in 0..head_height {
        out.push('|');
        for (y, w) in widths.iter().enumerate() {
            let h = head_cells
                .get(y)
                .and_then(|c| c.get(x))
                .map(String::as_str)
                .unwrap_or("");
            out.push(' ');
            out.push_str(&pad_center(&title(h), *w));
            out.push_str(" |");
        }
        out.push('\n');
    }
    out.push_str(&line);
    for cells in &body {
        let height = cells.iter().map(Vec::len).max().unwrap_or(0);
        for x in 0..height {
            for (y, cell) in cells.iter().enumerate() {
                out.push_str("| ");
                // Shorter cells are filled with two spaces per missing line, as tablewriter does.
                let s = cell.get(x).map(String::as_str).unwrap_or("  ");
                out.push_str(&pad_left(s, widths.get(y).copied().unwrap_or(0)));
                out.push(' ');
            }
            out.push_str("|\n");
        }
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_etcdctl() {
        let got = render(
            &["hash", "revision", "total keys", "total size"],
            &[vec![
                "e188ddb6".into(),
                "6".into(),
                "10".into(),
                "20 kB".into(),
            ]],
        );
        let want = "\
+----------+----------+------------+------------+
|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |
+----------+----------+------------+------------+
| e188ddb6 |        6 |         10 |      20 kB |
+----------+----------+------------+------------+
";
        assert_eq!(got, want);
    }

    #[test]
    fn wraps_long_cells_at_spaces() {
        let lines = wrap("one two three four five six seven eight nine ten", 30);
        assert!(lines.iter().all(|l| l.len() <= 30), "{lines:?}");
        assert_eq!(
            lines.join(" "),
            "one two three four five six seven eight nine ten"
        );
        // A single long word stays whole.
        assert_eq!(
            wrap("http://127.0.0.1:2379,http://127.0.0.1:22379", 30).len(),
            1
        );
    }
}
