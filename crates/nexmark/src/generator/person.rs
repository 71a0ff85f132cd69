//! Person events: who registers, with name, email, credit card and address drawn from
//! Beam's lists and shapes.

use super::columns::{Utf8Column, int64, record_batch, timestamps};
use super::shared::{Context, lanes};
use crate::EventKind;
use crate::format::push_4_digits;
use crate::model::{FIRST_PERSON_ID, PERSON_AVG_BYTES, last_person};
use crate::rng::{Draws, below16};
use crate::text::{push_extra, push_words, words_len};
use arrow_array::RecordBatch;

/// First names a person's name is drawn from (Beam's list).
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
/// Last names a person's name is drawn from (Beam's list).
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
/// Cities a person lives in (Beam's list).
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
/// States a person lives in.
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];

/// Person columns under construction.
pub(super) struct PersonColumns {
    id: Vec<i64>,
    name: Utf8Column,
    email_address: Utf8Column,
    credit_card: Utf8Column,
    city: Utf8Column,
    state: Utf8Column,
    date_time: Vec<i64>,
    extra: Utf8Column,
}

impl PersonColumns {
    pub(super) fn with_capacity(rows: usize) -> PersonColumns {
        PersonColumns {
            id: Vec::with_capacity(rows),
            name: Utf8Column::with_capacity(rows, rows * 12),
            email_address: Utf8Column::with_capacity(rows, rows * 12),
            credit_card: Utf8Column::with_capacity(rows, rows * 19),
            city: Utf8Column::with_capacity(rows, rows * 8),
            state: Utf8Column::with_capacity(rows, rows * 2),
            date_time: Vec::with_capacity(rows),
            extra: Utf8Column::with_capacity(rows, rows * 140),
        }
    }

    pub(super) fn push(&mut self, ctx: &Context, event_id: u64, date_time: i64) {
        let draws = Draws::new(ctx.event_key, event_id);
        self.id.push(FIRST_PERSON_ID + last_person(event_id));
        self.date_time.push(date_time);

        let [first, last, city, state] = lanes(draws.draw(0));
        let first = FIRST_NAMES[usize::from(below16(first, FIRST_NAMES.len() as u16))];
        let last = LAST_NAMES[usize::from(below16(last, LAST_NAMES.len() as u16))];
        let name = &mut self.name.values;
        name.extend_from_slice(first.as_bytes());
        name.push(b' ');
        name.extend_from_slice(last.as_bytes());
        self.name.end_row();
        let name_len = first.len() + 1 + last.len();

        // Beam: nextString(7) + "@" + nextString(5) + ".com".
        let [user_len, domain_len, _, _] = lanes(draws.draw(1));
        let email = &mut self.email_address.values;
        let user_len = push_words(email, draws, 2, words_len(user_len, 7));
        email.push(b'@');
        let domain_len = push_words(email, draws, 3, words_len(domain_len, 5));
        email.extend_from_slice(b".com");
        self.email_address.end_row();
        let email_len = user_len + 1 + domain_len + 4;

        // Four groups of four digits, separated by spaces.
        let card = &mut self.credit_card.values;
        for (i, group) in lanes(draws.draw(4)).into_iter().enumerate() {
            if i > 0 {
                card.push(b' ');
            }
            push_4_digits(card, u32::from(below16(group, 10_000)));
        }
        self.credit_card.end_row();
        let card_len = 19;

        let city = CITIES[usize::from(below16(city, CITIES.len() as u16))];
        let state = STATES[usize::from(below16(state, STATES.len() as u16))];
        self.city.push(city.as_bytes());
        self.state.push(state.as_bytes());

        let current = 8 + name_len + email_len + card_len + city.len() + state.len();
        push_extra(
            &mut self.extra.values,
            draws,
            5,
            6,
            current,
            PERSON_AVG_BYTES,
        );
        self.extra.end_row();
    }

    pub(super) fn finish(self) -> RecordBatch {
        record_batch(
            EventKind::Person,
            vec![
                int64(self.id),
                self.name.finish(),
                self.email_address.finish(),
                self.credit_card.finish(),
                self.city.finish(),
                self.state.finish(),
                timestamps(self.date_time),
                self.extra.finish(),
            ],
        )
    }
}
