//! Wire formats, one home each: what goes on the delivery queue ([`queue`]), what a dead
//! letter carries ([`dead_letter`]), and the headers of a delivery ([`headers`]). Every
//! crate that writes or reads one of them goes through here.

pub mod dead_letter;
pub mod headers;
pub mod queue;
