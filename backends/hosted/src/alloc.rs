//! The process's allocator: the system one, counted in
//! `morgana_runtime::memory` (so `--memory` budgets a hosted process as a
//! VM's RAM budgets an image).

use std::alloc::System;

use morgana_alloc::Counted;

#[global_allocator]
static ALLOCATOR: Counted<System> = Counted(System);
