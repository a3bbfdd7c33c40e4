//! One module per screen. The walking skeleton has one: [`tail`].

pub mod tail;
