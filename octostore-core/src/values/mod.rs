//! The bottom layer: values checked once, when they are made, and the one error type.
//!
//! Validated names ([`names`]) and numbers and texts ([`bounds`]), the instant and the clocks
//! that read it ([`clock`]), and [`Error`](error::Error). They import nothing else of the
//! crate: every other layer stands on them.

pub mod bounds;
pub mod clock;
pub mod error;
pub mod names;
