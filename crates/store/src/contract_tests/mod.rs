//! The store contract, one suite for every backend: what [`ResultStore`](crate::ResultStore)
//! promises (atomic commits, idempotent creation, readers never blocked, loads of the last
//! commit, late events stored once, drops that leave nothing, filtered and paged reads),
//! checked through that interface alone.
//!
//! Each test is a function of a [`TestStore`](harness::TestStore) written once;
//! `contract_test!(name)` instantiates it as the tests `name::sqlite` and `name::postgres`.
//! The PostgreSQL half runs when `FRESHET_TEST_POSTGRES_URL` names a server, each test in a
//! schema of its own. What one backend does its own way (pragmas, WAL, the stored text
//! form, PostgreSQL's URL and locks) is tested beside that backend.

/// Runs the contract test `$name` (a `fn(&TestStore)`) on each backend.
macro_rules! contract_test {
    ($name:ident) => {
        mod $name {
            use $crate::contract_tests::harness::TestStore;

            #[test]
            fn sqlite() {
                super::$name(&TestStore::sqlite());
            }

            #[test]
            fn postgres() {
                if let Some(store) = TestStore::postgres(stringify!($name)) {
                    super::$name(&store);
                }
            }
        }
    };
}

mod changes;
mod commit;
mod ddl;
pub(crate) mod fixtures;
mod harness;
mod leases;
mod read;
mod tasks;
