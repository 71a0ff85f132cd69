//! Roles: what a token lets its holder do. A role grants what it names and nothing else:
//! `ingest` appends events, `query` reads results, status and metrics; `admin` runs DDL
//! and may do everything the other two may. `ingest` and `query` do not include each
//! other, so a leaked ingest token cannot read data and a dashboard's token cannot write.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Append events: `POST /v1/streams/{name}/events`.
    Ingest,
    /// Read views, results, status and metrics.
    Query,
    /// DDL (`POST /v1/sql`) and everything `ingest` and `query` may do.
    Admin,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [Role; 3] = [Role::Ingest, Role::Query, Role::Admin];

    /// The role's name, as `--role` and `FRESHET_TOKENS` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Query => "query",
            Role::Admin => "admin",
        }
    }

    /// The role named `name` (exactly as [`Role::name`] spells it).
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether a token of this role may call what `needed` guards.
    pub fn allows(self, needed: Role) -> bool {
        self == needed || self == Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_includes_the_others_and_they_do_not_include_each_other() {
        use Role::*;
        let allowed: Vec<(Role, Role)> = Role::ALL
            .into_iter()
            .flat_map(|held| Role::ALL.into_iter().map(move |needed| (held, needed)))
            .filter(|(held, needed)| held.allows(*needed))
            .collect();
        assert_eq!(
            allowed,
            [
                (Ingest, Ingest),
                (Query, Query),
                (Admin, Ingest),
                (Admin, Query),
                (Admin, Admin)
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Some(role));
            assert_eq!(
                serde_json::to_string(&role).expect("serializes"),
                format!("\"{role}\"")
            );
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse(""), None);
    }
}
