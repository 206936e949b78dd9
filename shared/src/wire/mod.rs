//! Wire formats, one home each: what goes on the delivery queue ([`queue`]), what a dead
//! letter carries ([`dead_letter`]), the headers of a delivery ([`headers`]), and a request into a Cognigy session ([`cognigy`]). Every
//! crate that writes or reads one of them goes through here.

pub mod cognigy;
pub mod dead_letter;
pub mod headers;
pub mod queue;
