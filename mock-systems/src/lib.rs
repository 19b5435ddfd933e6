//! Stand-in line systems for every adapter kind. Depends on no other workspace crate: it speaks the
//! wire protocols itself, so a type shared with the code under test cannot hide a bug.
