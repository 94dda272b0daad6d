//! The SA table of one direction: SAs come and go while the engine runs, and the index of
//! an SA stays what it was for as long as the SA lives, so that policies (and the offload
//! engine's records) can name SAs by index.
//!
//! A removed SA leaves a free entry that a later SA may take. Whoever removes an SA first
//! makes sure nothing names its index any more (the database operations in
//! [`super::change`] refuse to remove an SA a policy still names).

use core::ops::{Index, IndexMut};

/// SAs by stable index.
#[derive(Debug)]
pub struct SaTable<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Default for SaTable<T> {
    fn default() -> Self {
        SaTable {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> SaTable<T> {
    /// Adds an SA; returns its index.
    pub fn insert(&mut self, sa: T) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.entries[i] = Some(sa);
                i
            }
            None => {
                self.entries.push(Some(sa));
                self.entries.len() - 1
            }
        }
    }

    /// Removes the SA at `index`, if there is one.
    pub fn remove(&mut self, index: usize) -> Option<T> {
        let sa = self.entries.get_mut(index)?.take()?;
        self.free.push(index);
        self.len -= 1;
        Some(sa)
    }

    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.entries.get(index)?.as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.entries.get_mut(index)?.as_mut()
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SAs, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten()
    }

    /// The SAs, in index order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().flatten()
    }

    /// The SAs with their indices, in index order.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|sa| (i, sa)))
    }

    /// The SAs with their indices, in index order.
    pub fn entries_mut(&mut self) -> impl Iterator<Item = (usize, &mut T)> {
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(|(i, e)| e.as_mut().map(|sa| (i, sa)))
    }

    /// The index of the first SA for which `f` holds.
    pub fn position(&self, mut f: impl FnMut(&T) -> bool) -> Option<usize> {
        self.entries().find(|(_, sa)| f(sa)).map(|(i, _)| i)
    }
}

/// Indexing is for indices the caller holds from this table (a policy's bundle, a record
/// of the offload engine): an index with no SA is a broken invariant, not bad input.
impl<T> Index<usize> for SaTable<T> {
    type Output = T;
    #[inline]
    fn index(&self, index: usize) -> &T {
        match self.get(index) {
            Some(sa) => sa,
            None => no_sa(index),
        }
    }
}

impl<T> IndexMut<usize> for SaTable<T> {
    #[inline]
    fn index_mut(&mut self, index: usize) -> &mut T {
        match self.get_mut(index) {
            Some(sa) => sa,
            None => no_sa(index),
        }
    }
}

/// Indexing a table where it holds no SA: a bug of the caller.
#[cold]
#[inline(never)]
fn no_sa(index: usize) -> ! {
    panic!("no SA at index {index} of the table")
}

#[cfg(test)]
mod tests {
    use super::SaTable;

    #[test]
    fn indices_stay_put_and_free_entries_are_reused() {
        let mut t = SaTable::default();
        let a = t.insert("a");
        let b = t.insert("b");
        let c = t.insert("c");
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(t.remove(b), Some("b"));
        assert_eq!(t.remove(b), None, "removed once");
        assert_eq!((t.len(), t[a], t[c]), (2, "a", "c"));
        assert_eq!(t.get(b), None);
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(t.insert("d"), b, "the free entry is taken");
        assert_eq!(
            t.entries().map(|(i, s)| (i, *s)).collect::<Vec<_>>(),
            [(0, "a"), (1, "d"), (2, "c")]
        );
        assert_eq!(t.position(|s| *s == "c"), Some(2));
        assert_eq!(t.remove(99), None);
    }
}
