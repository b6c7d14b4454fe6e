//! Helpers shared by the join operators.
