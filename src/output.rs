//! Everything the CLI prints goes through here: aligned tables, JSON, and errors.

use serde::Serialize;
use std::io::Write;
use unicode_width::UnicodeWidthStr;

/// Print `value` as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Print a line on stdout.
pub fn line(text: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = writeln!(out, "{}", text.as_ref());
}

/// Print lines on stdout and make sure they were written, flushed, for output that must
/// not be lost unseen (a token shown once), unlike [`line`], which ignores a closed pipe.
pub fn lines_checked(lines: &[&str]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for text in lines {
        writeln!(out, "{text}")?;
    }
    out.flush()
}

/// Print a note on stderr (what a command did beside its result, which stays on stdout).
pub fn note(text: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr().lock(), "{}", text.as_ref());
}

/// The first `max` rows of `batch` as text cells for [`table`] (NULL for nulls).
pub fn cells(batch: &arrow_array::RecordBatch, max: usize) -> anyhow::Result<Vec<Vec<String>>> {
    let options = arrow_cast::display::FormatOptions::default().with_null("NULL");
    let formatters = batch
        .columns()
        .iter()
        .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows().min(max))
        .map(|i| formatters.iter().map(|f| f.value(i).to_string()).collect())
        .collect())
}

/// Print rows as a table with a header, columns aligned by the terminal columns each cell
/// takes (a wide character takes two, a combining one none).
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    for text in table_lines(header, rows) {
        line(text);
    }
}

/// The lines of [`table`].
fn table_lines(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.width());
            }
        }
    }
    let render = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            // A row wider than the header has no width for its extra cells.
            let pad = widths.get(i).map_or(0, |w| w.saturating_sub(cell.width()));
            s.push_str(cell);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(pad));
            }
        }
        s
    };
    std::iter::once(render(header.to_vec()))
        .chain(
            rows.iter()
                .map(|row| render(row.iter().map(String::as_str).collect())),
        )
        .collect()
}

/// Print an error and its causes on stderr.
pub fn error_chain(e: &anyhow::Error) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    for cause in e.chain().skip(1) {
        let _ = writeln!(err, "  caused by: {cause}");
    }
}

/// Human-readable byte count.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: `query`'s table misaligned non-ASCII text.
    #[test]
    fn issue_20_tables_align_wide_and_accented_text() {
        let rows = vec![
            vec!["café".to_string(), "1".to_string()],
            vec!["日本".to_string(), "2".to_string()],
            vec!["x".to_string(), "3".to_string()],
        ];
        let lines = table_lines(&["名前", "n"], &rows);
        // The second column starts at the same terminal column on every line.
        let starts: Vec<usize> = lines
            .iter()
            .map(|l| {
                let (first, _) = l.rsplit_once("  ").expect("two columns");
                first.width() + 2
            })
            .collect();
        assert!(starts.iter().all(|&s| s == starts[0]), "{lines:#?}");
        assert_eq!(starts[0], 6, "{lines:#?}");
    }
}
