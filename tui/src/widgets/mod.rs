//! Pieces drawn on top of or inside views: the filter box and the help overlay, plus text
//! helpers that measure and cut strings by terminal columns.

pub mod filter_box;
pub mod help;
pub mod text;
