//! Calls that wait for their recipe's compile: a call of a name with no current version but one
//! the runtime is compiling (a first load, or every loaded recipe just after a start, when the
//! artifact cache makes it take milliseconds, or a minute for a Python component without one)
//! is held, in its connection's order, instead of being answered NORECIPE, and begins once the
//! runtime reports back.

use super::*;

impl Core {
    /// The runtime reported on a version of `name`: the calls waiting for it begin on the
    /// current version, wait on for a later one still compiling, or, with neither, are answered
    /// NORECIPE (the compile failed, or the recipe was removed meanwhile).
    pub(crate) fn begin_awaiting_compile(&mut self, name: &str) {
        let ids: Vec<RunId> = self
            .runs
            .awaiting_compile
            .iter()
            .filter(|(_, r)| r.start.recipe == name)
            .map(|(&id, _)| id)
            .collect();
        if ids.is_empty() {
            return;
        }
        let current = self.catalog.current(name);
        let compiling = self.catalog.compiling(name);
        for id in ids {
            if current.is_none() {
                if let Some(v) = compiling {
                    if let Some(run) = self.runs.awaiting_compile.get_mut(&id) {
                        run.start.version = v;
                    }
                    continue;
                }
            }
            let Some(mut run) = self.runs.awaiting_compile.remove(&id) else {
                continue;
            };
            match current {
                Some(v) => {
                    run.start.version = v;
                    // Its stage starts at the tree as it is now; so does its txn time.
                    run.start.now_ms = self.now.wall_ms;
                    run.stage = Stage::new(run.session, self.next_zxid, run.start.now_ms);
                    self.begin(id, run);
                }
                None => self.finish(id, run, Err(ErrorCode::NoRecipe)),
            }
        }
    }
}
