"""Pure values and rules: job states, the error tree, time, durations. No I/O here."""
