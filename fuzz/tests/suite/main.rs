//! The fuzz crate's one integration-test binary (as cargo's own tests are laid out): the corpus
//! as a regression suite, and the by-hand regeneration of the structured `config` seeds.

mod corpus;
mod seeds;
