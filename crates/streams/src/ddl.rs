//! `CREATE STREAM` and `DROP STREAM`, parsed with sqlparser (no hand-written SQL parser).
//!
//! sqlparser knows `CREATE TABLE` but not `STREAM` or `WATERMARK FOR`. The statement is
//! tokenized, the word `STREAM` is swapped for `TABLE ` and the `WATERMARK FOR col AS expr`
//! clause is cut out and blanked with spaces (so every position sqlparser reports still
//! points into the user's text), and the rest is parsed as `CREATE TABLE`. The watermark
//! expression is parsed by sqlparser on its own.

use crate::def::{ColumnDef, FsyncMode, JetStreamDef, StreamDef, StreamOptions, event_time_type};
use crate::duration::parse_duration;
use crate::error::{Result, StreamError};
use arrow_schema::{DataType, TimeUnit};
use sqlparser::ast::{
    self, BinaryOperator, ColumnOption, CreateTableOptions, ExactNumberInfo, Expr, ObjectType,
    SqlOption, Statement,
};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// A statement about streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatement {
    /// `CREATE STREAM [IF NOT EXISTS] ...`
    Create {
        /// The validated definition.
        def: StreamDef,
        /// Whether `IF NOT EXISTS` was given.
        if_not_exists: bool,
    },
    /// `DROP STREAM [IF EXISTS] name`
    Drop {
        /// The stream's name.
        name: String,
        /// Whether `IF EXISTS` was given.
        if_exists: bool,
    },
}

fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>> {
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| StreamError::BadDdl(format!("cannot read SQL: {e}")))
}

/// Split a script into statements at top-level semicolons (quotes and comments respected).
/// Empty statements are skipped.
pub fn split_statements(sql: &str) -> Result<Vec<String>> {
    let tokens = tokenize(sql)?;
    let mut out = Vec::new();
    let mut start = 0usize;
    let index = LineIndex::new(sql);
    for t in &tokens {
        if t.token == Token::SemiColon {
            let at = index.byte(t.span.start);
            out.push(sql[start..at].to_string());
            start = at + 1;
        }
    }
    out.push(sql[start..].to_string());
    Ok(out.into_iter().filter(|s| !s.trim().is_empty()).collect())
}

/// Maps sqlparser's 1-based line/column locations to byte positions.
struct LineIndex<'a> {
    sql: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(sql: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { sql, line_starts }
    }
    fn byte(&self, loc: Location) -> usize {
        let Some(&start) = self.line_starts.get(loc.line.saturating_sub(1) as usize) else {
            return self.sql.len();
        };
        self.sql[start..]
            .char_indices()
            .nth(loc.column.saturating_sub(1) as usize)
            .map_or(self.sql.len(), |(i, _)| start + i)
    }
}

/// The grammar `CREATE STREAM` is parsed with: sqlparser's generic one (same identifiers,
/// quoting and literals as everywhere else in Freshet), except that `KEY` and `INDEX` at
/// the start of a column definition are column names. The generic grammar reads them as
/// the start of a MySQL-style `KEY name (columns)` index, a branch sqlparser takes only for
/// the generic and MySQL dialects themselves.
#[derive(Debug)]
struct StreamDdl;

impl Dialect for StreamDdl {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect {}.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_part(ch)
    }

    fn supports_unicode_string_literal(&self) -> bool {
        GenericDialect {}.supports_unicode_string_literal()
    }

    fn supports_string_escape_constant(&self) -> bool {
        GenericDialect {}.supports_string_escape_constant()
    }

    fn supports_nested_comments(&self) -> bool {
        GenericDialect {}.supports_nested_comments()
    }

    fn supports_data_type_signed_suffix(&self) -> bool {
        GenericDialect {}.supports_data_type_signed_suffix()
    }

    fn supports_asc_desc_in_column_definition(&self) -> bool {
        GenericDialect {}.supports_asc_desc_in_column_definition()
    }

    fn supports_interval_options(&self) -> bool {
        GenericDialect {}.supports_interval_options()
    }
}

fn is_word(t: &Token, word: &str) -> bool {
    matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Parse one statement if it is about streams; `Ok(None)` if it is something else.
pub fn parse_stream_statement(sql: &str) -> Result<Option<StreamStatement>> {
    let tokens = tokenize(sql)?;
    let words: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let (verb, stream_tok) = match words.as_slice() {
        [first, second, ..]
            if is_word(&first.token, "create") && is_word(&second.token, "stream") =>
        {
            ("create", *second)
        }
        [first, second, ..]
            if is_word(&first.token, "drop") && is_word(&second.token, "stream") =>
        {
            ("drop", *second)
        }
        _ => return Ok(None),
    };
    let index = LineIndex::new(sql);
    let mut text: Vec<u8> = sql.as_bytes().to_vec();
    let at = index.byte(stream_tok.span.start);
    text[at..at + "stream".len()].copy_from_slice(b"TABLE ");
    let watermark = if verb == "create" {
        cut_watermark(&tokens, &index, &mut text)?
    } else {
        None
    };
    let rewritten = String::from_utf8(text).expect("only ASCII bytes were replaced");
    let statements = Parser::parse_sql(&StreamDdl, &rewritten)
        .map_err(|e| StreamError::BadDdl(format!("{}: {e}", verb_phrase(verb))))?;
    let [statement] = statements.as_slice() else {
        return Err(StreamError::BadDdl(
            "expected exactly one statement; separate several with ';'".into(),
        ));
    };
    match statement {
        Statement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names,
            ..
        } => {
            let [name] = names.as_slice() else {
                return Err(StreamError::BadDdl(
                    "DROP STREAM takes one stream name".into(),
                ));
            };
            Ok(Some(StreamStatement::Drop {
                name: object_name(name)?,
                if_exists: *if_exists,
            }))
        }
        Statement::CreateTable(create) => {
            let def = build_def(create, watermark, sql.trim())?;
            Ok(Some(StreamStatement::Create {
                def,
                if_not_exists: create.if_not_exists,
            }))
        }
        other => Err(StreamError::BadDdl(format!(
            "unsupported stream statement: {other}"
        ))),
    }
}

fn verb_phrase(verb: &str) -> &'static str {
    if verb == "create" {
        "cannot parse CREATE STREAM"
    } else {
        "cannot parse DROP STREAM"
    }
}

/// `WATERMARK FOR col AS expr` as written.
struct WatermarkClause {
    column: String,
    expr: Expr,
    location: Location,
}

/// Find the `WATERMARK FOR` clause in the column list, blank it (and the comma before it)
/// out of `text`, and parse it.
fn cut_watermark(
    tokens: &[TokenWithSpan],
    index: &LineIndex<'_>,
    text: &mut [u8],
) -> Result<Option<WatermarkClause>> {
    let mut depth = 0i32;
    let mut last_comma: Option<usize> = None;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 1 => last_comma = Some(i),
            t if depth == 1 && is_word(t, "watermark") => {
                let start = i;
                let mut end = i;
                let mut inner = 0i32;
                while end < tokens.len() {
                    match tokens[end].token {
                        Token::LParen => inner += 1,
                        Token::RParen if inner == 0 => break,
                        Token::RParen => inner -= 1,
                        Token::Comma if inner == 0 => break,
                        _ => {}
                    }
                    end += 1;
                }
                let clause: Vec<Token> = tokens[start..end]
                    .iter()
                    .map(|t| t.token.clone())
                    .filter(|t| !matches!(t, Token::Whitespace(_)))
                    .collect();
                let location = tokens[start].span.start;
                let parsed = parse_watermark(&clause, location)?;
                // Blank from the comma before the clause (or the clause start) to its end.
                let from = match last_comma {
                    Some(c) => index.byte(tokens[c].span.start),
                    None => index.byte(tokens[start].span.start),
                };
                let to = match tokens.get(end) {
                    // The clause came first: take the comma after it instead.
                    Some(t) if last_comma.is_none() && t.token == Token::Comma => {
                        index.byte(t.span.start) + 1
                    }
                    Some(t) => index.byte(t.span.start),
                    None => text.len(),
                };
                for b in &mut text[from..to] {
                    if *b != b'\n' {
                        *b = b' ';
                    }
                }
                return Ok(Some(parsed));
            }
            _ => {}
        }
        i += 1;
    }
    Ok(None)
}

fn parse_watermark(clause: &[Token], location: Location) -> Result<WatermarkClause> {
    let err = |msg: &str| {
        StreamError::BadDdl(format!(
            "{msg} (WATERMARK clause at line {}, column {}); expected \
             WATERMARK FOR <column> AS <column> - INTERVAL '<n>' <unit>",
            location.line, location.column
        ))
    };
    let [_, for_kw, col, as_kw, rest @ ..] = clause else {
        return Err(err("incomplete WATERMARK clause"));
    };
    if !is_word(for_kw, "for") || !is_word(as_kw, "as") {
        return Err(err("malformed WATERMARK clause"));
    }
    let Token::Word(col) = col else {
        return Err(err("WATERMARK FOR needs a column name"));
    };
    let expr = Parser::new(&GenericDialect {})
        .with_tokens(rest.to_vec())
        .parse_expr()
        .map_err(|e| err(&format!("bad watermark expression: {e}")))?;
    Ok(WatermarkClause {
        column: normalize_ident(&col.value, col.quote_style.is_some()),
        expr,
        location,
    })
}

fn normalize_ident(value: &str, quoted: bool) -> String {
    if quoted {
        value.to_string()
    } else {
        value.to_ascii_lowercase()
    }
}

fn ident(i: &ast::Ident) -> String {
    normalize_ident(&i.value, i.quote_style.is_some())
}

fn object_name(name: &ast::ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(ident))
        .collect();
    match parts.as_slice() {
        [one] => {
            validate_name(one)?;
            Ok(one.clone())
        }
        _ => Err(StreamError::BadDdl(format!(
            "stream name `{name}` must be a single identifier"
        ))),
    }
}

/// Stream names become directory names: keep them plain.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StreamError::BadDdl(format!(
            "stream name `{name}` must be 1-64 characters of letters, digits and '_', \
             not starting with a digit"
        )))
    }
}

/// Map a SQL type to the Arrow type Freshet stores.
pub fn arrow_type(sql: &ast::DataType) -> Option<DataType> {
    use ast::DataType as S;
    Some(match sql {
        S::BigInt(_) | S::Int8(_) | S::Int64 => DataType::Int64,
        S::Int(_) | S::Integer(_) | S::Int4(_) | S::Int32 => DataType::Int32,
        S::SmallInt(_) | S::Int2(_) | S::Int16 => DataType::Int16,
        S::TinyInt(_) => DataType::Int8,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::Real | S::Float4 | S::Float32 | S::Float(_) => DataType::Float32,
        S::Boolean | S::Bool => DataType::Boolean,
        S::Varchar(_) | S::CharacterVarying(_) | S::Char(_) | S::Text | S::String(_) => {
            DataType::Utf8
        }
        S::Timestamp(_, tz) => match tz {
            ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
            }
            _ => event_time_type(),
        },
        S::Date => DataType::Date32,
        S::Decimal(info) | S::Numeric(info) => match info {
            ExactNumberInfo::None => DataType::Decimal128(38, 10),
            ExactNumberInfo::Precision(p) => DataType::Decimal128((*p).min(38) as u8, 0),
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                DataType::Decimal128((*p).min(38) as u8, (*s).clamp(-38, 38) as i8)
            }
        },
        S::Bytea | S::Binary(_) | S::Varbinary(_) | S::Blob(_) => DataType::Binary,
        _ => return None,
    })
}

const SUPPORTED_TYPES: &str = "BIGINT, INT, SMALLINT, TINYINT, DOUBLE, REAL, FLOAT, BOOLEAN, \
     VARCHAR, TEXT, TIMESTAMP, TIMESTAMP WITH TIME ZONE, DATE, DECIMAL(p,s), BYTEA";

fn build_def(
    create: &ast::CreateTable,
    watermark: Option<WatermarkClause>,
    ddl: &str,
) -> Result<StreamDef> {
    let name = object_name(&create.name)?;
    if create.query.is_some() {
        return Err(StreamError::BadDdl(
            "CREATE STREAM ... AS SELECT is not supported; declare the columns".into(),
        ));
    }
    if create.columns.is_empty() {
        return Err(StreamError::BadDdl(format!(
            "stream `{name}` declares no columns"
        )));
    }
    let mut columns = Vec::new();
    for c in &create.columns {
        let col = ident(&c.name);
        if columns.iter().any(|x: &ColumnDef| x.name == col) {
            return Err(StreamError::BadDdl(format!(
                "column `{col}` is declared twice in stream `{name}`"
            )));
        }
        let data_type = arrow_type(&c.data_type).ok_or_else(|| {
            StreamError::BadDdl(format!(
                "unknown type `{}` for column `{col}` (line {}, column {}); supported types: {SUPPORTED_TYPES}",
                c.data_type, c.name.span.start.line, c.name.span.start.column
            ))
        })?;
        let mut nullable = true;
        for opt in &c.options {
            match opt.option {
                ColumnOption::NotNull => nullable = false,
                ColumnOption::Null => nullable = true,
                ref other => {
                    return Err(StreamError::BadDdl(format!(
                        "column option `{other}` on `{col}` is not supported for streams \
                         (only NULL / NOT NULL)"
                    )));
                }
            }
        }
        columns.push(ColumnDef {
            name: col,
            sql_type: c.data_type.to_string(),
            data_type,
            nullable,
        });
    }
    if !create.constraints.is_empty() {
        return Err(StreamError::BadDdl(
            "table constraints (PRIMARY KEY, UNIQUE, ...) are not supported on streams".into(),
        ));
    }
    let options = match &create.table_options {
        CreateTableOptions::None => Vec::new(),
        CreateTableOptions::With(opts) => opts.clone(),
        other => {
            return Err(StreamError::BadDdl(format!(
                "stream options must be given as WITH (key = value, ...), not `{other}`"
            )));
        }
    };
    let mut partitions = 1u32;
    let mut partition_key = None;
    let mut event_time_opt = None;
    let mut stream_options = StreamOptions::default();
    let (mut log, mut subject, mut replicas) = (None, None, None);
    for opt in &options {
        let SqlOption::KeyValue { key, value } = opt else {
            return Err(StreamError::BadDdl(format!(
                "stream option `{opt}` must be key = value"
            )));
        };
        let key = key.value.to_ascii_lowercase();
        let text = option_text(value);
        let bad = |what: &str| StreamError::BadDdl(format!("option {key} = {value}: {what}"));
        match key.as_str() {
            "partitions" => {
                partitions = text
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=freshet_types::limits::PARTITIONS_MAX).contains(p))
                    .ok_or_else(|| {
                        bad(&format!(
                            "must be a whole number from 1 to {}",
                            freshet_types::limits::PARTITIONS_MAX
                        ))
                    })?;
            }
            "partition_key" => partition_key = Some(text.to_ascii_lowercase()),
            "event_time" => event_time_opt = Some(text.to_ascii_lowercase()),
            "fsync" => {
                stream_options.fsync = match text.to_ascii_lowercase().as_str() {
                    "always" => FsyncMode::Always,
                    "interval" => FsyncMode::Interval,
                    "never" => FsyncMode::Never,
                    _ => return Err(bad("must be 'always', 'interval' or 'never'")),
                }
            }
            "fsync_interval" => {
                stream_options.fsync_interval_ms = duration_ms(&text).map_err(|e| bad(&e))?
            }
            "segment_bytes" => {
                stream_options.segment_bytes = text
                    .parse::<u64>()
                    .ok()
                    .filter(|b| *b >= 4096)
                    .ok_or_else(|| bad("must be a number of bytes, at least 4096"))?
            }
            "retention_age" | "retention" => {
                stream_options.retention_age_ms = Some(duration_ms(&text).map_err(|e| bad(&e))?)
            }
            "retention_bytes" => {
                stream_options.retention_bytes = Some(
                    text.parse::<u64>()
                        .map_err(|_| bad("must be a number of bytes"))?,
                )
            }
            "idle_timeout" => {
                stream_options.idle_timeout_ms = duration_ms(&text).map_err(|e| bad(&e))?
            }
            "log" => log = Some(log_servers(&text).map_err(|e| bad(&e))?),
            "subject" => subject = Some(check_subject(&text).map_err(|e| bad(&e))?),
            "replicas" => {
                replicas = Some(
                    text.parse::<u32>()
                        .ok()
                        .filter(|r| (1..=5).contains(r))
                        .ok_or_else(|| bad("must be a whole number from 1 to 5"))?,
                )
            }
            _ => {
                return Err(StreamError::BadDdl(format!(
                    "unknown stream option `{key}`; known: partitions, partition_key, \
                     event_time, fsync, fsync_interval, segment_bytes, retention_age, \
                     retention_bytes, idle_timeout, log, subject, replicas"
                )));
            }
        }
    }
    stream_options.jetstream = match log {
        Some(servers) => Some(Box::new(JetStreamDef {
            servers,
            subject: subject.unwrap_or_else(|| format!("freshet.{name}")),
            replicas: replicas.unwrap_or(1),
            created: Vec::new(),
        })),
        None if subject.is_some() || replicas.is_some() => {
            return Err(StreamError::BadDdl(
                "options subject and replicas belong to a stream whose log is NATS \
                 JetStream: add log = 'nats://host:port'"
                    .into(),
            ));
        }
        None => None,
    };
    let (event_time, watermark_delay_ms) = match (watermark, event_time_opt) {
        (Some(w), other) => {
            if other.as_ref().is_some_and(|o| *o != w.column) {
                return Err(StreamError::BadDdl(format!(
                    "event_time = '{}' disagrees with WATERMARK FOR {}",
                    other.unwrap_or_default(),
                    w.column
                )));
            }
            let delay = watermark_delay(&w)?;
            (w.column, delay)
        }
        (None, Some(col)) => (col, 0),
        (None, None) => {
            return Err(StreamError::BadDdl(format!(
                "stream `{name}` has no event-time column: add \
                 `WATERMARK FOR <timestamp column> AS <column> - INTERVAL '4' SECOND` to the \
                 column list (or WITH (event_time = '<column>') for in-order data)"
            )));
        }
    };
    let Some(et) = columns.iter().find(|c| c.name == event_time) else {
        return Err(StreamError::BadDdl(format!(
            "event-time column `{event_time}` is not a column of stream `{name}`"
        )));
    };
    if !matches!(et.data_type, DataType::Timestamp(_, _)) {
        return Err(StreamError::BadDdl(format!(
            "event-time column `{event_time}` must be a TIMESTAMP, not {}",
            et.sql_type
        )));
    }
    if let Some(key) = &partition_key {
        let Some(col) = columns.iter().find(|c| &c.name == key) else {
            return Err(StreamError::BadDdl(format!(
                "partition_key `{key}` is not a column of stream `{name}` (columns: {})",
                columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if !crate::partitioner::supports_key_type(&col.data_type) {
            return Err(StreamError::BadDdl(format!(
                "partition_key `{key}` has type {}, which cannot be hashed stably; use an \
                 integer, text or timestamp column",
                col.sql_type
            )));
        }
    }
    Ok(StreamDef {
        name,
        columns,
        event_time,
        watermark_delay_ms,
        partitions,
        partition_key,
        options: stream_options,
        ddl: ddl.to_string(),
    })
}

/// `log = 'nats://host:port[,nats://host:port...]'`: the JetStream servers, checked for
/// form only (whether they answer is checked when the stream is created).
fn log_servers(text: &str) -> std::result::Result<String, String> {
    let servers: Vec<&str> = text.split(',').map(str::trim).collect();
    for s in &servers {
        let Some(addr) = s.strip_prefix("nats://") else {
            return Err(format!(
                "`{s}` is not a NATS server address: the only log besides the embedded one is \
                 NATS JetStream, written nats://host:port (several joined by commas)"
            ));
        };
        if addr.is_empty() || addr.contains(['/', '@', ' ']) {
            return Err(format!(
                "`{s}` must be nats://host:port, with no path or credentials"
            ));
        }
    }
    Ok(servers.join(","))
}

/// A subject prefix: dot-separated tokens of letters, digits, `-` and `_` (no wildcards).
fn check_subject(text: &str) -> std::result::Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 200
        && text.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(text.to_string())
    } else {
        Err(
            "must be a NATS subject such as 'nexmark.bid': dot-separated words of letters, \
             digits, '-' and '_', no wildcards; partition p is published on <subject>.<p>"
                .into(),
        )
    }
}

fn option_text(value: &Expr) -> String {
    let s = value.to_string();
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .map(|s| s.replace("''", "'"))
        .unwrap_or(s)
}

fn duration_ms(text: &str) -> std::result::Result<u64, String> {
    parse_duration(text).map(|d| d.as_millis() as u64)
}

/// The watermark expression must be `col` or `col - INTERVAL ...` on the declared column.
fn watermark_delay(w: &WatermarkClause) -> Result<u64> {
    let err = |msg: String| {
        StreamError::BadDdl(format!(
            "{msg} (WATERMARK at line {}, column {}); expected `{col} - INTERVAL '4' SECOND`",
            w.location.line,
            w.location.column,
            col = w.column
        ))
    };
    let check_col = |e: &Expr| -> Result<()> {
        let name = match e {
            Expr::Identifier(i) => ident(i),
            other => return Err(err(format!("`{other}` is not the column `{}`", w.column))),
        };
        if name != w.column {
            return Err(err(format!(
                "the watermark expression uses `{name}` but is declared FOR `{}`",
                w.column
            )));
        }
        Ok(())
    };
    match &w.expr {
        Expr::Identifier(_) => {
            check_col(&w.expr)?;
            Ok(0)
        }
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } => {
            check_col(left)?;
            let Expr::Interval(interval) = right.as_ref() else {
                return Err(err(format!("`{right}` is not an INTERVAL")));
            };
            let value = option_text(&interval.value);
            let text = match &interval.leading_field {
                Some(field) => format!("{value} {field}"),
                None => value,
            };
            duration_ms(&text).map_err(err)
        }
        other => Err(err(format!("unsupported watermark expression `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BID: &str = "CREATE STREAM bid (
        auction   BIGINT NOT NULL,
        bidder    BIGINT NOT NULL,
        price     BIGINT NOT NULL,
        channel   VARCHAR,
        date_time TIMESTAMP NOT NULL,
        WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
    ) WITH (partitions = 4, partition_key = 'auction')";

    fn create(sql: &str) -> Result<StreamDef> {
        match parse_stream_statement(sql)? {
            Some(StreamStatement::Create { def, .. }) => Ok(def),
            other => panic!("not a create: {other:?}"),
        }
    }

    fn err(sql: &str) -> String {
        create(sql).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_design_example() {
        let def = create(BID).unwrap();
        assert_eq!(def.name, "bid");
        assert_eq!(def.columns.len(), 5);
        assert_eq!(def.columns[0].data_type, DataType::Int64);
        assert!(!def.columns[0].nullable);
        assert!(def.columns[3].nullable);
        assert_eq!(def.event_time, "date_time");
        assert_eq!(def.watermark_delay_ms, 4000);
        assert_eq!(def.partitions, 4);
        assert_eq!(def.partition_key.as_deref(), Some("auction"));
        assert_eq!(def.options.fsync, FsyncMode::Always);
    }

    #[test]
    fn watermark_may_come_first_or_use_a_string_interval() {
        let def = create(
            "create stream s (watermark for ts as ts - interval '2 seconds', ts timestamp, v int)",
        )
        .unwrap();
        assert_eq!(def.watermark_delay_ms, 2000);
        assert_eq!(def.columns.len(), 2);
    }

    /// Issue 20: an unquoted column named `key` failed to parse. The rest of the generic
    /// grammar stays: backticks quote, `SIGNED` is a suffix, `like` is a name.
    #[test]
    fn issue_20_columns_may_be_named_key_or_index() {
        let def = create(
            "CREATE STREAM s (like TEXT, `user` TEXT, v INT SIGNED, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)",
        )
        .expect("the generic grammar's other forms still parse");
        let names: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["like", "user", "v", "ts"]);
        let def = create(
            "CREATE STREAM s (key TEXT, index BIGINT, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)",
        )
        .expect("key and index are column names here");
        let names: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["key", "index", "ts"]);
    }

    #[test]
    fn drop_stream() {
        assert_eq!(
            parse_stream_statement("DROP STREAM IF EXISTS bid").unwrap(),
            Some(StreamStatement::Drop {
                name: "bid".into(),
                if_exists: true
            })
        );
    }

    #[test]
    fn other_statements_are_not_ours() {
        assert_eq!(parse_stream_statement("SELECT 1").unwrap(), None);
    }

    #[test]
    fn unknown_type_is_named_with_position() {
        let e = err("CREATE STREAM s (ts TIMESTAMP, v FOOBAR, WATERMARK FOR ts AS ts)");
        assert!(e.contains("unknown type `FOOBAR` for column `v`"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn missing_event_time_column() {
        let e = err("CREATE STREAM s (v INT)");
        assert!(e.contains("no event-time column"), "{e}");
        let e = err("CREATE STREAM s (v INT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)");
        assert!(e.contains("event-time column `ts` is not a column"), "{e}");
        let e = err("CREATE STREAM s (v INT, WATERMARK FOR v AS v)");
        assert!(e.contains("must be a TIMESTAMP"), "{e}");
    }

    #[test]
    fn partition_key_not_in_schema() {
        let e = err(
            "CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (partition_key = 'nope')",
        );
        assert!(e.contains("partition_key `nope` is not a column"), "{e}");
    }

    #[test]
    fn bad_options_are_named() {
        let e = err("CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (partitions = 0)");
        assert!(e.contains("partitions"), "{e}");
        let e = err("CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (colour = 'red')");
        assert!(e.contains("unknown stream option `colour`"), "{e}");
        let e = err(
            "CREATE STREAM s (ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (fsync = 'sometimes')",
        );
        assert!(e.contains("fsync"), "{e}");
    }

    #[test]
    fn syntax_errors_point_into_the_users_text() {
        let e = err("CREATE STREAM s (ts TIMESTAMP,, WATERMARK FOR ts AS ts)");
        assert!(e.contains("Line: 1"), "{e}");
    }

    #[test]
    fn splits_scripts() {
        let parts = split_statements("CREATE STREAM a (x INT); -- c;\n select ';' ; ;").unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts[1].contains("';'"));
    }
}
