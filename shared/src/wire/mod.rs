//! Wire formats, one home each: what goes on the delivery queue ([`queue`]). Every crate
//! that writes or reads one of them goes through here.

pub mod queue;
