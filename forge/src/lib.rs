//! The forge: synthetic Windows kernel dumps that follow real kernel layouts exactly, each with
//! a ground-truth file of what was planted.
