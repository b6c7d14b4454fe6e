//! One walker for the trees of the crate: physical plans and expressions.
//!
//! A tree type lists its children once (one match, written as a macro
//! that both `children` and `children_mut` expand); every traversal is
//! written here, once.

/// A node of a tree whose children are nodes of the same type.
pub trait Tree: Sized {
    fn children(&self) -> Vec<&Self>;
    fn children_mut(&mut self) -> Vec<&mut Self>;

    /// Calls `f` on every node, parents before children (pre-order).
    fn visit(&self, f: &mut impl FnMut(&Self)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }

    /// Calls `f` on every node, parents before children, mutably.
    fn visit_mut(&mut self, f: &mut impl FnMut(&mut Self)) {
        f(self);
        for c in self.children_mut() {
            c.visit_mut(f);
        }
    }
}
