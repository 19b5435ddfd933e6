//! An integrator-defined adapter kind.
