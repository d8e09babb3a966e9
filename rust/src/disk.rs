//! Simulated disk model (issue: the simulated world). Work in progress.
