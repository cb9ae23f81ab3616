//! Interning of external string ids into dense `u32` ids, and the one order
//! in which ids are compared when scores tie.

use std::cmp::Ordering;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::error::EngineError;
use crate::limits::ID_BYTES_MAX;

/// Dense internal id of a user or an item: its position in the interner.
pub type Dense = u32;

/// Maps external ids to dense ids in order of first appearance. Replaying the
/// same records in the same order therefore assigns the same dense ids, which
/// is what lets a snapshot and the log agree.
#[derive(Default, Clone)]
pub struct Interner {
    by_name: FxHashMap<Key, Dense>,
    names: Vec<Arc<str>>,
}

/// Bytes of a name kept inside the hash table itself.
const INLINE_BYTES: usize = 22;

/// A name as the hash table keys it: short names (nearly all ids) inline, so
/// a lookup compares them without following a pointer to the heap (a cache
/// miss per event on large states); longer ones share the `Arc` of `names`.
#[derive(Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; INLINE_BYTES] },
    Heap(Arc<str>),
}

impl Key {
    fn new(name: &Arc<str>) -> Key {
        let src = name.as_bytes();
        if src.len() <= INLINE_BYTES {
            let mut bytes = [0u8; INLINE_BYTES];
            bytes[..src.len()].copy_from_slice(src);
            Key::Inline { len: src.len() as u8, bytes }
        } else {
            Key::Heap(Arc::clone(name))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..*len as usize],
            Key::Heap(name) => name.as_bytes(),
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, so that lookups by `&[u8]` find it.
        self.as_bytes().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl Interner {
    pub fn get(&self, name: &str) -> Option<Dense> {
        self.by_name.get(name.as_bytes()).copied()
    }

    /// The dense id of `name`, assigned now if it is new.
    pub fn intern(&mut self, name: &str) -> Dense {
        if let Some(&id) = self.by_name.get(name.as_bytes()) {
            return id;
        }
        let id = self.names.len() as Dense;
        let name: Arc<str> = Arc::from(name);
        self.by_name.insert(Key::new(&name), id);
        self.names.push(name);
        id
    }

    pub fn name(&self, id: Dense) -> &Arc<str> {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    pub fn from_names(names: Vec<String>) -> Interner {
        let mut interner = Interner::default();
        for name in names {
            interner.intern(&name);
        }
        interner
    }
}

/// The order used whenever two scores tie: shorter ids first, then bytewise.
/// For decimal ids without leading zeros (MovieLens and most numeric keys)
/// this is numeric order, so "ties go to the lower id" means what it says.
pub fn id_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// The rule `id` breaks, if any.
pub(crate) fn id_rule(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".into());
    }
    if id.len() > ID_BYTES_MAX {
        return Some(format!("must be at most {ID_BYTES_MAX} bytes, got {}", id.len()));
    }
    if id.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    None
}

/// Checks an external id (user, item or event id) against the rules every
/// write applies (1–256 bytes, no control characters); the error names
/// `field`.
///
/// ```
/// assert!(recwal::validate_id("user", "alice").is_ok());
/// assert!(recwal::validate_id("user", "").unwrap_err().to_string().contains("user"));
/// ```
pub fn validate_id(field: &str, id: &str) -> Result<(), EngineError> {
    match id_rule(id) {
        Some(rule) => Err(EngineError::invalid(field, rule)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_dense_and_stable() {
        let mut interner = Interner::default();
        assert_eq!(interner.intern("b"), 0);
        assert_eq!(interner.intern("a"), 1);
        assert_eq!(interner.intern("b"), 0);
        assert_eq!(interner.get("a"), Some(1));
        assert_eq!(interner.get("c"), None);
        assert_eq!(&**interner.name(1), "a");
    }

    #[test]
    fn id_order_is_numeric_for_plain_numbers() {
        assert_eq!(id_order("9", "10"), Ordering::Less);
        assert_eq!(id_order("100", "99"), Ordering::Greater);
        assert_eq!(id_order("abc", "abd"), Ordering::Less);
        assert_eq!(id_order("x", "x"), Ordering::Equal);
    }
}
