//! View statements (`CREATE VIEW`, `DROP VIEW`, `SHOW VIEWS`, `DESCRIBE VIEW`) and the view
//! catalog, `views.json` in the data directory, rewritten atomically on every change.
//!
//! A view is stored as its name, its query text and its validated options; the plan is
//! derived again whenever the view is run, so the catalog holds no DataFusion types.

use crate::error::{EngineError, Result};
use crate::options::ViewOptions;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{CreateTableOptions, ObjectType, SqlOption, Statement};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::path::{Path, PathBuf};

/// A declared view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewDef {
    /// The view's name; also its results table's name.
    pub name: String,
    /// The SELECT, as DataFusion will plan it.
    pub query: String,
    /// Validated options.
    pub options: ViewOptions,
    /// The statement as written.
    pub ddl: String,
}

/// A parsed view statement.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewStatement {
    /// `CREATE VIEW [IF NOT EXISTS] name WITH (...) AS SELECT ...`
    Create {
        /// The new view.
        def: ViewDef,
        /// Whether an existing view of that name is fine.
        if_not_exists: bool,
    },
    /// `DROP VIEW [IF EXISTS] name`
    Drop {
        /// The view.
        name: String,
        /// Whether a missing view is fine.
        if_exists: bool,
    },
    /// `SHOW VIEWS`
    Show,
    /// `DESCRIBE VIEW name`
    Describe(String),
}

fn words(sql: &str) -> Vec<String> {
    // The tokenizer skips comments and whitespace; an untokenizable text is not ours to judge.
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Vec::new();
    };
    tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_lowercase()),
            Token::Whitespace(_) => None,
            other => Some(other.to_string()),
        })
        .take(3)
        .collect()
}

/// Parse `sql` if it is a view statement; `Ok(None)` otherwise.
pub fn parse_view_statement(sql: &str) -> Result<Option<ViewStatement>> {
    let w = words(sql);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["show", "views", ..] => return Ok(Some(ViewStatement::Show)),
        ["describe", "view", name] => {
            return Ok(Some(ViewStatement::Describe(name.to_string())));
        }
        ["describe", "view"] => {
            return Err(EngineError::Sql("DESCRIBE VIEW needs a view name".into()));
        }
        ["create", "view", ..] | ["create", "or", ..] | ["drop", "view", ..] => {}
        _ => return Ok(None),
    }
    let statements = Parser::parse_sql(&GenericDialect {}, &crate::flink_windows::rewrite(sql))
        .map_err(|e| EngineError::Sql(format!("cannot parse view statement: {e}")))?;
    let [statement] = statements.as_slice() else {
        return Err(EngineError::Sql(
            "expected exactly one statement; separate several with ';'".into(),
        ));
    };
    match statement {
        Statement::CreateView(cv) => {
            if cv.or_replace || cv.materialized || cv.temporary || !cv.columns.is_empty() {
                return Err(EngineError::Sql(
                    "CREATE VIEW takes only a name, WITH (...) options and AS SELECT; \
                     OR REPLACE, MATERIALIZED, TEMPORARY and column lists are not supported"
                        .into(),
                ));
            }
            let name = object_name(&cv.name)?;
            let pairs = match &cv.options {
                CreateTableOptions::None => Vec::new(),
                CreateTableOptions::With(opts) => option_pairs(opts)?,
                other => {
                    return Err(EngineError::Sql(format!(
                        "view options go in WITH (key = 'value', ...), not {other}"
                    )));
                }
            };
            let options = ViewOptions::from_pairs(&pairs)?;
            Ok(Some(ViewStatement::Create {
                def: ViewDef {
                    name,
                    query: cv.query.to_string(),
                    options,
                    ddl: sql.trim().trim_end_matches(';').to_string(),
                },
                if_not_exists: cv.if_not_exists,
            }))
        }
        Statement::Drop {
            object_type: ObjectType::View,
            if_exists,
            names,
            ..
        } => {
            let [name] = names.as_slice() else {
                return Err(EngineError::Sql("DROP VIEW takes one view name".into()));
            };
            Ok(Some(ViewStatement::Drop {
                name: object_name(name)?,
                if_exists: *if_exists,
            }))
        }
        other => Err(EngineError::Sql(format!(
            "unsupported view statement: {other}"
        ))),
    }
}

fn option_pairs(opts: &[SqlOption]) -> Result<Vec<(String, String)>> {
    opts.iter()
        .map(|opt| match opt {
            SqlOption::KeyValue { key, value } => {
                let text = value.to_string();
                let text = text
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .map(|s| s.replace("''", "'"))
                    .unwrap_or(text);
                Ok((key.value.to_ascii_lowercase(), text))
            }
            other => Err(EngineError::Sql(format!(
                "view option `{other}` must be written key = 'value'"
            ))),
        })
        .collect()
}

fn object_name(name: &sqlparser::ast::ObjectName) -> Result<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| {
            if i.quote_style.is_some() {
                i.value.clone()
            } else {
                i.value.to_ascii_lowercase()
            }
        })
        .collect();
    let [one] = parts.as_slice() else {
        return Err(EngineError::Sql(format!(
            "view name `{name}` must be a single identifier"
        )));
    };
    let ok = !one.is_empty()
        && one.len() <= 64
        && one.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !one.starts_with(|c: char| c.is_ascii_digit())
        && !one.starts_with("freshet_");
    if !ok {
        return Err(EngineError::Sql(format!(
            "view name `{one}` must be 1-64 letters, digits and '_', not starting with a digit \
             or with 'freshet_' (reserved for the store's own tables)"
        )));
    }
    Ok(one.clone())
}

/// The views of a data directory, in creation order (a view only reads earlier ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewCatalog {
    /// Format version of the file.
    pub version: u32,
    /// The views.
    pub views: Vec<ViewDef>,
}

/// The views' file name inside the data directory.
pub const FILE: &str = "views.json";

fn catalog_path(root: &Path) -> PathBuf {
    root.join(FILE)
}

impl ViewCatalog {
    /// The views created before `name` (all of them if there is no such view), in order:
    /// those a view named `name` may read.
    pub fn earlier_than(&self, name: &str) -> Vec<ViewDef> {
        self.views
            .iter()
            .take_while(|v| v.name != name)
            .cloned()
            .collect()
    }

    /// Load `views.json`; empty if it does not exist.
    pub fn load(root: &Path) -> Result<ViewCatalog> {
        let path = catalog_path(root);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EngineError::Io {
                context: format!("read {}", path.display()),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ViewCatalog {
                version: 1,
                views: Vec::new(),
            }),
            Err(source) => Err(EngineError::Io {
                context: format!("read {}", path.display()),
                source,
            }),
        }
    }

    /// The contents of `views.json` for this catalog.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("the catalog always serialises")
    }

    /// Write `views.json` atomically (temp file, fsync, rename, fsync the directory).
    pub fn save(&self, root: &Path) -> Result<()> {
        let path = catalog_path(root);
        freshet_types::files::write_atomically(root, FILE, &self.to_bytes()).map_err(|source| {
            EngineError::Io {
                context: format!("write {}", path.display()),
                source,
            }
        })
    }

    /// A view by name.
    pub fn get(&self, name: &str) -> Option<&ViewDef> {
        self.views.iter().find(|v| v.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_create_view_with_options() {
        let s = parse_view_statement(
            "CREATE VIEW hot WITH (freshness = '2s', late_data = 'drop') AS \
             SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction",
        )
        .unwrap()
        .unwrap();
        let ViewStatement::Create { def, .. } = s else {
            panic!("{s:?}")
        };
        assert_eq!(def.name, "hot");
        assert_eq!(def.options.freshness_ms, 2000);
        assert!(def.query.contains("GROUP BY auction"), "{}", def.query);
    }

    #[test]
    fn other_statements_are_not_ours() {
        assert!(
            parse_view_statement("CREATE STREAM x (a BIGINT)")
                .unwrap()
                .is_none()
        );
        assert!(parse_view_statement("SELECT 1").unwrap().is_none());
        assert_eq!(
            parse_view_statement("drop view if exists v").unwrap(),
            Some(ViewStatement::Drop {
                name: "v".into(),
                if_exists: true
            })
        );
        assert_eq!(
            parse_view_statement("SHOW VIEWS").unwrap(),
            Some(ViewStatement::Show)
        );
    }

    #[test]
    fn reserved_names_are_refused() {
        let e = parse_view_statement("CREATE VIEW freshet_x AS SELECT 1").unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
    }
}
