"""Pure rules with no I/O: job state machine, error codes, plans, admission, credits."""
