//! One group's rows in the order of their keys: a sorted vector while the group is small
//! (a top-N's N rows cost a few tens of bytes each, where a B-tree allocates a node of
//! eleven slots for the first), a B-tree once it is large (a top-N over rows that change
//! keeps every row of its group).

use std::collections::{BTreeMap, btree_map};

/// Past this many rows a group's rows move to a B-tree.
const SMALL_MAX: usize = 32;

/// Rows by key, in key order.
pub enum Ranked<V> {
    /// Sorted by key, at most [`SMALL_MAX`] rows.
    Small(Vec<(Box<[u8]>, V)>),
    /// Any number of rows.
    Large(BTreeMap<Box<[u8]>, V>),
}

impl<V> Default for Ranked<V> {
    fn default() -> Self {
        Ranked::Small(Vec::new())
    }
}

impl<V> Ranked<V> {
    /// How many rows.
    pub fn len(&self) -> usize {
        match self {
            Ranked::Small(v) => v.len(),
            Ranked::Large(m) => m.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row with key `k`.
    pub fn get(&self, k: &[u8]) -> Option<&V> {
        match self {
            Ranked::Small(v) => v
                .binary_search_by(|(key, _)| key.as_ref().cmp(k))
                .ok()
                .map(|i| &v[i].1),
            Ranked::Large(m) => m.get(k),
        }
    }

    /// Puts `value` at key `k`; returns the row it replaced.
    pub fn insert(&mut self, k: Box<[u8]>, value: V) -> Option<V> {
        match self {
            Ranked::Small(v) => match v.binary_search_by(|(key, _)| key.as_ref().cmp(&k)) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, value)),
                Err(i) if v.len() < SMALL_MAX => {
                    v.insert(i, (k, value));
                    None
                }
                Err(_) => {
                    let mut m: BTreeMap<Box<[u8]>, V> = std::mem::take(v).into_iter().collect();
                    m.insert(k, value);
                    *self = Ranked::Large(m);
                    None
                }
            },
            Ranked::Large(m) => m.insert(k, value),
        }
    }

    /// Takes out the row with key `k`.
    pub fn remove(&mut self, k: &[u8]) -> Option<V> {
        match self {
            Ranked::Small(v) => v
                .binary_search_by(|(key, _)| key.as_ref().cmp(k))
                .ok()
                .map(|i| v.remove(i).1),
            Ranked::Large(m) => m.remove(k),
        }
    }

    /// Takes out the row with the greatest key.
    pub fn pop_last(&mut self) -> Option<(Box<[u8]>, V)> {
        match self {
            Ranked::Small(v) => v.pop(),
            Ranked::Large(m) => m.pop_last(),
        }
    }

    /// The greatest key.
    pub fn last_key(&self) -> Option<&[u8]> {
        match self {
            Ranked::Small(v) => v.last().map(|(k, _)| k.as_ref()),
            Ranked::Large(m) => m.last_key_value().map(|(k, _)| k.as_ref()),
        }
    }

    /// The rows in key order.
    pub fn iter(&self) -> Iter<'_, V> {
        match self {
            Ranked::Small(v) => Iter::Small(v.iter()),
            Ranked::Large(m) => Iter::Large(m.iter()),
        }
    }

    /// The rows in key order, their values mutable.
    pub fn iter_mut(&mut self) -> IterMut<'_, V> {
        match self {
            Ranked::Small(v) => IterMut::Small(v.iter_mut()),
            Ranked::Large(m) => IterMut::Large(m.iter_mut()),
        }
    }
}

/// [`Ranked::iter`].
pub enum Iter<'a, V> {
    /// Over a small group's rows.
    Small(std::slice::Iter<'a, (Box<[u8]>, V)>),
    /// Over a large group's rows.
    Large(btree_map::Iter<'a, Box<[u8]>, V>),
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a Box<[u8]>, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(i) => i.next().map(|(k, v)| (k, v)),
            Iter::Large(i) => i.next(),
        }
    }
}

/// [`Ranked::iter_mut`].
pub enum IterMut<'a, V> {
    /// Over a small group's rows.
    Small(std::slice::IterMut<'a, (Box<[u8]>, V)>),
    /// Over a large group's rows.
    Large(btree_map::IterMut<'a, Box<[u8]>, V>),
}

impl<'a, V> Iterator for IterMut<'a, V> {
    type Item = (&'a Box<[u8]>, &'a mut V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IterMut::Small(i) => i.next().map(|(k, v)| (&*k, v)),
            IterMut::Large(i) => i.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Box<[u8]> {
        n.to_be_bytes().into()
    }

    /// Whatever its size, it behaves as the B-tree it stands for: in key order, keys
    /// replaced in place, the last popped first, rows removed by key.
    #[test]
    fn small_and_large_agree_with_a_btree() {
        let mut ranked: Ranked<u32> = Ranked::default();
        let mut tree = BTreeMap::new();
        let mut x = 7u32;
        for step in 0..500u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let k = (x >> 16) % 90;
            match step % 5 {
                0..=2 => assert_eq!(ranked.insert(key(k), step), tree.insert(key(k), step)),
                3 => assert_eq!(ranked.remove(&key(k)), tree.remove(&key(k))),
                _ => assert_eq!(ranked.pop_last(), tree.pop_last()),
            }
            assert_eq!(ranked.len(), tree.len());
            assert_eq!(ranked.get(&key(k)), tree.get(&key(k)));
            assert_eq!(
                ranked.last_key(),
                tree.last_key_value().map(|(k, _)| k.as_ref())
            );
            let mine: Vec<(Box<[u8]>, u32)> = ranked.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let theirs: Vec<(Box<[u8]>, u32)> = tree.iter().map(|(k, v)| (k.clone(), *v)).collect();
            assert_eq!(mine, theirs);
        }
        assert!(
            matches!(ranked, Ranked::Large(_)),
            "it grew past the small size"
        );
        for (_, v) in ranked.iter_mut() {
            *v += 1;
        }
        assert!(ranked.iter().zip(tree.iter()).all(|(a, b)| *a.1 == b.1 + 1));
    }
}
