//! The three Nexmark streams: their kinds, Arrow schemas and `CREATE STREAM` statements.
//!
//! Every column is NOT NULL. Ids, money (cents) and counts are `Int64`, text is `Utf8`, and
//! `date_time`/`expires` are `Timestamp(Millisecond, None)` holding UTC milliseconds.

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

/// One of the three kinds of Nexmark event, each its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A person registers (stream `person`).
    Person,
    /// A person opens an auction (stream `auction`).
    Auction,
    /// A person bids on an auction (stream `bid`).
    Bid,
}

/// The SQL-level type of a column; each maps to exactly one Arrow type.
#[derive(Debug, Clone, Copy)]
enum ColumnType {
    BigInt,
    Varchar,
    Timestamp,
}

impl ColumnType {
    fn arrow(self) -> DataType {
        match self {
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Varchar => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
        }
    }

    fn sql(self) -> &'static str {
        match self {
            ColumnType::BigInt => "BIGINT",
            ColumnType::Varchar => "VARCHAR",
            ColumnType::Timestamp => "TIMESTAMP",
        }
    }
}

use ColumnType::{BigInt, Timestamp, Varchar};

const PERSON_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", BigInt),
    ("name", Varchar),
    ("email_address", Varchar),
    ("credit_card", Varchar),
    ("city", Varchar),
    ("state", Varchar),
    ("date_time", Timestamp),
    ("extra", Varchar),
];

const AUCTION_COLUMNS: &[(&str, ColumnType)] = &[
    ("id", BigInt),
    ("item_name", Varchar),
    ("description", Varchar),
    ("initial_bid", BigInt),
    ("reserve", BigInt),
    ("date_time", Timestamp),
    ("expires", Timestamp),
    ("seller", BigInt),
    ("category", BigInt),
    ("extra", Varchar),
];

const BID_COLUMNS: &[(&str, ColumnType)] = &[
    ("auction", BigInt),
    ("bidder", BigInt),
    ("price", BigInt),
    ("channel", Varchar),
    ("url", Varchar),
    ("date_time", Timestamp),
    ("extra", Varchar),
];

fn build_schema(columns: &[(&str, ColumnType)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|&(name, ty)| Field::new(name, ty.arrow(), false))
            .collect::<Vec<_>>(),
    ))
}

static PERSON_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| build_schema(PERSON_COLUMNS));
static AUCTION_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| build_schema(AUCTION_COLUMNS));
static BID_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| build_schema(BID_COLUMNS));

impl EventKind {
    /// All kinds, in stream-definition order.
    pub const ALL: [EventKind; 3] = [EventKind::Person, EventKind::Auction, EventKind::Bid];

    /// The stream's name: `person`, `auction` or `bid`.
    pub fn stream_name(&self) -> &'static str {
        match self {
            EventKind::Person => "person",
            EventKind::Auction => "auction",
            EventKind::Bid => "bid",
        }
    }

    /// The kind whose stream is called `name`, if any.
    pub fn from_stream_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.stream_name() == name)
    }

    /// The Arrow schema of this kind's batches (shared; cloning it is cheap).
    pub fn schema(&self) -> SchemaRef {
        match self {
            EventKind::Person => Arc::clone(&PERSON_SCHEMA),
            EventKind::Auction => Arc::clone(&AUCTION_SCHEMA),
            EventKind::Bid => Arc::clone(&BID_SCHEMA),
        }
    }

    /// The column the stream is partitioned by.
    pub fn partition_key(&self) -> &'static str {
        match self {
            EventKind::Person | EventKind::Auction => "id",
            EventKind::Bid => "auction",
        }
    }

    fn columns(self) -> &'static [(&'static str, ColumnType)] {
        match self {
            EventKind::Person => PERSON_COLUMNS,
            EventKind::Auction => AUCTION_COLUMNS,
            EventKind::Bid => BID_COLUMNS,
        }
    }

    /// How many column definitions go on each line of the `CREATE STREAM` statement; only
    /// for readability.
    fn ddl_line_lengths(self) -> &'static [usize] {
        match self {
            EventKind::Person => &[3, 3, 2],
            EventKind::Auction => &[3, 4, 3],
            EventKind::Bid => &[3, 4],
        }
    }

    /// The `CREATE STREAM` statement of this kind (no trailing semicolon), with a watermark
    /// of `date_time - 4 s`, keyed by [`EventKind::partition_key`].
    pub fn ddl(&self, partitions: u32) -> String {
        let mut sql = format!("CREATE STREAM {} (\n", self.stream_name());
        let mut columns = self.columns().iter();
        for &count in self.ddl_line_lengths() {
            sql.push_str("    ");
            for (i, (name, ty)) in columns.by_ref().take(count).enumerate() {
                if i > 0 {
                    sql.push(' ');
                }
                write!(sql, "{name} {} NOT NULL,", ty.sql()).expect("writing to a String");
            }
            sql.push('\n');
        }
        debug_assert!(columns.next().is_none(), "every column is on some line");
        write!(
            sql,
            "    WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND\n\
             ) WITH (partitions = {partitions}, partition_key = '{}')",
            self.partition_key()
        )
        .expect("writing to a String");
        sql
    }
}

/// The three `CREATE STREAM` statements (person, auction, bid), separated by `;\n`.
pub fn ddl(partitions: u32) -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.ddl(partitions))
        .collect::<Vec<_>>()
        .join(";\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bid_ddl_has_the_exact_shape() {
        let expected = "CREATE STREAM bid (
    auction BIGINT NOT NULL, bidder BIGINT NOT NULL, price BIGINT NOT NULL,
    channel VARCHAR NOT NULL, url VARCHAR NOT NULL, date_time TIMESTAMP NOT NULL, extra VARCHAR NOT NULL,
    WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH (partitions = 4, partition_key = 'auction')";
        assert_eq!(EventKind::Bid.ddl(4), expected);
    }

    #[test]
    fn ddl_has_three_statements_matching_the_schemas() {
        let text = ddl(7);
        let statements: Vec<&str> = text.split(";\n").collect();
        assert_eq!(statements.len(), 3);
        for (statement, kind) in statements.iter().zip(EventKind::ALL) {
            assert!(statement.starts_with(&format!("CREATE STREAM {} (\n", kind.stream_name())));
            assert!(statement.ends_with(&format!(
                ") WITH (partitions = 7, partition_key = '{}')",
                kind.partition_key()
            )));
            let schema = kind.schema();
            let mut rest = *statement;
            for field in schema.fields() {
                let ty = match field.data_type() {
                    DataType::Int64 => "BIGINT",
                    DataType::Utf8 => "VARCHAR",
                    _ => "TIMESTAMP",
                };
                let column = format!(" {} {ty} NOT NULL,", field.name());
                let at = rest.find(&column).expect("column in order");
                rest = &rest[at + column.len()..];
            }
        }
        assert!(text.contains("CREATE STREAM person (\n    id BIGINT NOT NULL, name VARCHAR"));
    }

    #[test]
    fn schemas_are_not_null_with_the_documented_columns() {
        let names = |k: EventKind| -> Vec<String> {
            k.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        assert_eq!(
            names(EventKind::Person),
            [
                "id",
                "name",
                "email_address",
                "credit_card",
                "city",
                "state",
                "date_time",
                "extra"
            ]
        );
        assert_eq!(
            names(EventKind::Auction),
            [
                "id",
                "item_name",
                "description",
                "initial_bid",
                "reserve",
                "date_time",
                "expires",
                "seller",
                "category",
                "extra"
            ]
        );
        assert_eq!(
            names(EventKind::Bid),
            [
                "auction",
                "bidder",
                "price",
                "channel",
                "url",
                "date_time",
                "extra"
            ]
        );
        for kind in EventKind::ALL {
            assert!(kind.schema().fields().iter().all(|f| !f.is_nullable()));
            assert_eq!(EventKind::from_stream_name(kind.stream_name()), Some(kind));
        }
        assert_eq!(
            EventKind::Auction.schema().field(6).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );
    }
}
