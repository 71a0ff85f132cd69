//! Flink's spelling of the window table functions, read as Freshet's: `TABLE(TUMBLE(TABLE
//! bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))` is `TUMBLE(bid, date_time, INTERVAL
//! '10' SECOND)`, and the same for `HOP` (slide, then size, in both) and `SESSION`.
//!
//! The SQL parser cannot read a `TABLE name` argument, so the rewrite works on the tokens
//! (strings, quoted names and comments stay as they are): it replaces each such call and
//! leaves everything else as written. A call in any other shape is left for the parser to
//! report.

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The window functions Freshet has, lower-case.
const FUNCTIONS: [&str; 3] = ["tumble", "hop", "session"];

/// `sql` with Flink's window table-function calls in Freshet's form; `sql` itself when it
/// has none (or does not tokenize: the parser then says why).
pub fn rewrite(sql: &str) -> String {
    // Tokens kept as written (quotes doubled, escapes not undone), so that writing them
    // back gives the same SQL.
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql)
        .with_unescape(false)
        .tokenize()
    else {
        return sql.to_owned();
    };
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        match flink_call(&tokens, i) {
            Some((replacement, next)) => {
                out.extend(replacement);
                changed = true;
                i = next;
            }
            None => {
                out.push(tokens[i].clone());
                i += 1;
            }
        }
    }
    if !changed {
        return sql.to_owned();
    }
    out.iter().map(Token::to_string).collect()
}

/// The index of the next token after `at` that is not whitespace.
fn next(tokens: &[Token], at: usize) -> Option<usize> {
    (at + 1..tokens.len()).find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(w) if w.keyword == keyword && w.quote_style.is_none())
}

/// If `TABLE ( f ( TABLE <name> , DESCRIPTOR ( <column> ) , <rest> ) )` starts at `at`:
/// the tokens of `f ( <name> , <column> , <rest> )` and the index after the call.
fn flink_call(tokens: &[Token], at: usize) -> Option<(Vec<Token>, usize)> {
    if !is_keyword(&tokens[at], Keyword::TABLE) {
        return None;
    }
    let open = next(tokens, at)?;
    if tokens[open] != Token::LParen {
        return None;
    }
    let function = next(tokens, open)?;
    match &tokens[function] {
        Token::Word(w)
            if w.quote_style.is_none()
                && FUNCTIONS.contains(&w.value.to_ascii_lowercase().as_str()) => {}
        _ => return None,
    }
    let call = next(tokens, function)?;
    if tokens[call] != Token::LParen {
        return None;
    }
    let table = next(tokens, call)?;
    if !is_keyword(&tokens[table], Keyword::TABLE) {
        return None;
    }
    // The stream's name: everything up to the first comma.
    let name_at = next(tokens, table)?;
    let comma = (name_at..tokens.len()).find(|&j| tokens[j] == Token::Comma)?;
    let descriptor = next(tokens, comma)?;
    if !matches!(&tokens[descriptor], Token::Word(w)
        if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("descriptor"))
    {
        return None;
    }
    let column_open = next(tokens, descriptor)?;
    if tokens[column_open] != Token::LParen {
        return None;
    }
    let column_close = (column_open..tokens.len()).find(|&j| tokens[j] == Token::RParen)?;
    // The rest of the call's arguments, up to its closing parenthesis, then TABLE's.
    let mut depth = 0usize;
    let mut close = None;
    for (j, token) in tokens.iter().enumerate().skip(column_close + 1) {
        match token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                close = Some(j);
                break;
            }
            Token::RParen => depth -= 1,
            _ => {}
        }
    }
    let close = close?;
    let outer = next(tokens, close)?;
    if tokens[outer] != Token::RParen {
        return None;
    }
    let words = |range: std::ops::Range<usize>| {
        tokens[range]
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut call_tokens = vec![tokens[function].clone(), Token::LParen];
    call_tokens.extend(words(name_at..comma));
    call_tokens.push(Token::Comma);
    call_tokens.push(Token::Whitespace(Whitespace::Space));
    call_tokens.extend(words(column_open + 1..column_close));
    call_tokens.extend_from_slice(&tokens[column_close + 1..=close]);
    Some((call_tokens, outer + 1))
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn flink_calls_become_freshet_calls() {
        assert_eq!(
            rewrite(
                "SELECT auction, window_start FROM TABLE(TUMBLE(TABLE bid, \
                 DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY 1"
            ),
            "SELECT auction, window_start FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND) \
             GROUP BY 1"
        );
        assert_eq!(
            rewrite(
                "select * from table( hop( table \"Bid\" , descriptor( ts ), \
                 INTERVAL '2' SECOND, INTERVAL '10' SECOND ) ) b"
            ),
            "select * from hop(\"Bid\", ts, INTERVAL '2' SECOND, INTERVAL '10' SECOND ) b"
        );
        // Quotes doubled inside strings and names stay doubled.
        assert_eq!(
            rewrite(
                "SELECT 'it''s', \"a\"\"b\" FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(t), \
                 INTERVAL '1' SECOND)) WHERE s IN ('x'', ''y')"
            ),
            "SELECT 'it''s', \"a\"\"b\" FROM TUMBLE(bid, t, INTERVAL '1' SECOND) WHERE s IN \
             ('x'', ''y')"
        );
        // Two calls, one nested in a join; strings and comments untouched.
        let sql = "SELECT 'TABLE(TUMBLE(TABLE x' AS s -- TABLE(HOP(\n FROM \
                   TABLE(SESSION(TABLE a, DESCRIPTOR(t), INTERVAL '1' MINUTE)) x JOIN \
                   TABLE(TUMBLE(TABLE b, DESCRIPTOR(t), INTERVAL '1' MINUTE)) y ON x.k = y.k";
        assert_eq!(
            rewrite(sql),
            "SELECT 'TABLE(TUMBLE(TABLE x' AS s -- TABLE(HOP(\n FROM \
             SESSION(a, t, INTERVAL '1' MINUTE) x JOIN TUMBLE(b, t, INTERVAL '1' MINUTE) y \
             ON x.k = y.k"
        );
    }

    #[test]
    fn other_sql_is_left_as_written() {
        for sql in [
            "SELECT * FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)",
            "SELECT * FROM TABLE(CUMULATE(TABLE bid, DESCRIPTOR(t), INTERVAL '1' SECOND))",
            "SELECT * FROM TABLE(TUMBLE(bid, DESCRIPTOR(t), INTERVAL '1' SECOND))",
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(t), INTERVAL '1' SECOND)",
            "SELECT 'unterminated",
        ] {
            assert_eq!(rewrite(sql), sql);
        }
    }
}
