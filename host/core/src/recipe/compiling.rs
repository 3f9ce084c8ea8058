//! Calls that wait for their recipe's compile: a call of a name with no current version but one
//! the runtime is compiling (a first load, or every loaded recipe just after a start, when the
//! artifact cache makes it take milliseconds, or a minute for a Python component without one)
//! is held, in its connection's order, instead of being answered NORECIPE, and begins once the
//! runtime reports back. So is any run on a version still compiling: a parked call re-armed or
//! woken just after a start.

use super::*;

impl Core {
    /// The runtime reported on a version of `name`: each call waiting for it begins on its own
    /// version if the runtime holds it now, else waits on for a later version still compiling,
    /// else begins on the current version, else (the compile failed, or the recipe was removed
    /// meanwhile, and no built-in has the name) is answered NORECIPE.
    pub(crate) fn begin_awaiting_compile(&mut self, name: &str) {
        let ids: Vec<RunId> = self
            .runs
            .awaiting_compile
            .iter()
            .filter(|(_, r)| r.start.recipe == name)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let Some(mut run) = self.runs.awaiting_compile.remove(&id) else {
                continue;
            };
            let version = if self.catalog.is_compiled(name, run.start.version) {
                Some(run.start.version)
            } else if let Some(v) = self.catalog.compiling(name) {
                run.start.version = v;
                self.runs.awaiting_compile.insert(id, run);
                continue;
            } else {
                self.catalog.current(name)
            };
            match version {
                Some(v) => {
                    run.start.version = v;
                    self.begin_again(id, run);
                }
                None => self.finish(id, run, Err(ErrorCode::NoRecipe)),
            }
        }
    }
}
