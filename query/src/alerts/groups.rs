//! One rule's groups: the window of every distinct `group_by` key.
//!
//! Every matching event looks up its group, so the lookup hashes the event's key values
//! where they lie in the event (no key is built unless the group is new), with a hasher
//! seeded per process so crafted service or container names cannot force collisions.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use shiplog_core::Event;

use super::rule::FieldRef;
use super::window::Window;

/// A group's key values (one per `group_by` field, in order) and its window.
struct Group {
    key: Vec<String>,
    window: Window,
}

/// The groups of one rule, by key.
#[derive(Default)]
pub struct Groups {
    table: HashTable<Group>,
    hasher: RandomState,
}

impl Groups {
    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Forgets every group.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// The window of the group `event` belongs to under `fields`, if that group exists.
    pub fn of_event(&mut self, fields: &[FieldRef], event: &Event) -> Option<&mut Window> {
        let mut h = self.hasher.build_hasher();
        for f in fields {
            write_part(&mut h, &f.text_ref(event));
        }
        let hash = h.finish();
        self.table
            .find_mut(hash, |g| {
                g.key.len() == fields.len()
                    && fields
                        .iter()
                        .zip(&g.key)
                        .all(|(f, k)| f.text_ref(event) == k.as_str())
            })
            .map(|g| &mut g.window)
    }

    /// The window of the group with `key`, if it exists.
    pub fn get(&self, key: &[String]) -> Option<&Window> {
        let hash = self.hash_key(key);
        self.table.find(hash, |g| g.key == key).map(|g| &g.window)
    }

    /// The window of the group with `key`, made with `new` when the group is new.
    pub fn get_or_insert_with(
        &mut self,
        key: Vec<String>,
        new: impl FnOnce() -> Window,
    ) -> &mut Window {
        let hash = self.hash_key(&key);
        let hasher = &self.hasher;
        let entry = self
            .table
            .entry(hash, |g| g.key == key, |g| hash_with(hasher, &g.key));
        &mut entry
            .or_insert_with(|| Group { key, window: new() })
            .into_mut()
            .window
    }

    /// Every group's key.
    pub fn keys(&self) -> impl Iterator<Item = &Vec<String>> + '_ {
        self.table.iter().map(|g| &g.key)
    }

    /// Keeps the groups for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&[String], &mut Window) -> bool) {
        self.table.retain(|g| keep(&g.key, &mut g.window));
    }

    fn hash_key(&self, key: &[String]) -> u64 {
        hash_with(&self.hasher, key)
    }
}

fn hash_with(state: &RandomState, key: &[String]) -> u64 {
    let mut h = state.build_hasher();
    for k in key {
        write_part(&mut h, k);
    }
    h.finish()
}

/// One key value, terminated so that ("ab", "c") and ("a", "bc") hash apart.
fn write_part(h: &mut impl Hasher, part: &str) {
    h.write(part.as_bytes());
    h.write_u8(0xff);
}

#[cfg(test)]
mod tests {
    use shiplog_core::query::KeywordField;

    use super::*;

    #[test]
    fn an_event_finds_the_group_made_from_its_key_and_no_other() {
        let fields = [
            FieldRef::Keyword(KeywordField::Service),
            FieldRef::Keyword(KeywordField::ContainerName),
        ];
        let mut g = Groups::default();
        let event = |svc: &str, name: &str| Event {
            service: svc.into(),
            container_name: name.into(),
            ..Event::default()
        };
        assert!(g.of_event(&fields, &event("ab", "c")).is_none());
        g.get_or_insert_with(vec!["ab".into(), "c".into()], || Window::new(10));
        g.get_or_insert_with(vec!["a".into(), "bc".into()], || Window::new(20));
        // The same key again adds no group.
        g.get_or_insert_with(vec!["ab".into(), "c".into()], || Window::new(30));
        assert_eq!(g.len(), 2);
        assert!(g.of_event(&fields, &event("ab", "c")).is_some());
        assert!(g.of_event(&fields, &event("a", "bc")).is_some());
        assert!(g.of_event(&fields, &event("abc", "")).is_none());
        assert!(g.get(&["ab".into(), "c".into()]).is_some());
        g.retain(|k, _| k[0] == "a");
        assert_eq!(
            g.keys().cloned().collect::<Vec<_>>(),
            [vec!["a".to_string(), "bc".to_string()]]
        );
        g.clear();
        assert_eq!(g.len(), 0);
    }
}
