//! One module per subcommand: each turns its parsed flags into library calls and prints what
//! happened. Dispatch is in the crate root ([`crate::main_with`]).

pub(crate) mod demo;
pub(crate) mod detect;
pub(crate) mod evaluate;
pub(crate) mod generate;
pub(crate) mod index;
pub(crate) mod inspect;
pub(crate) mod merge;
pub(crate) mod preview;
pub(crate) mod run;
pub(crate) mod score;
pub(crate) mod timeline;
pub(crate) mod weights;
