//! Pieces drawn on top of or inside views: input boxes, the help and detail overlays,
//! sparklines, and text helpers that measure and cut strings by terminal columns.

pub mod column;
pub mod detail;
pub mod filter_box;
pub mod help;
pub mod spark;
pub mod text;
